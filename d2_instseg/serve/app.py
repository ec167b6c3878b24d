"""The web app: one page (choose a model, drop an image, see the overlay beside it, filter by score,
download the results) over a JSON API, on FastAPI.

=======================================  =======================================================
``GET /``                                the page (its JS and CSS are served from ``/static``)
``GET /healthz``                         ``{"status": "ok"}``, answered while predictions run
``GET /v1/models``                       the models of ``models.yaml``: name, loaded, kind
``POST /v1/predict?model=NAME``          multipart field ``file``: COCO-style results (RLE
                                         masks) or class areas, image size, timing, links
``GET /v1/results/{id}/overlay.png``     the Visualizer overlay at ``?threshold=``
``GET /v1/results/{id}/coco.json``       the COCO results at ``?threshold=``
``GET /v1/results/{id}/labels.png``      the label image at ``?threshold=``
``GET /docs``, ``/openapi.json``         FastAPI's OpenAPI page (Swagger UI served locally)
=======================================  =======================================================

A prediction is kept (a bounded cache) so that a new threshold re-renders it without running the
model again. Each model runs ``workers`` predictions at a time with at most ``queue`` more waiting;
beyond that the answer is 503 with Retry-After. Bad uploads get a 4xx naming the problem.
"""

import asyncio
import collections
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Dict

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .decode import BadInput, decode_image
from .models import ModelCache, ModelSpec
from .results import Prediction, coco_instances, label_png, overlay_png, semantic_classes

logger = logging.getLogger(__name__)
STATIC = os.path.join(os.path.dirname(__file__), "static")


@dataclass
class ServerSettings:
    max_body_bytes: int = 32 << 20  # uploads above this are refused (413) before parsing
    max_pixels: int = 64 << 20  # decoded images above this are refused (413) from their header
    workers: int = 1  # predictions of one model running at once
    queue: int = 4  # predictions of one model waiting; beyond: 503 + Retry-After
    max_loaded: int = 4  # models kept in memory (least recently used evicted)
    max_results: int = 32  # predictions kept for re-rendering at another threshold
    retry_after_s: int = 2


class _Limiter:
    """``workers`` slots and ``queue`` places in line; ``slot()`` raises HTTP 503 when full.
    (The counters are only touched from the event loop, so they need no lock.)"""

    def __init__(self, workers: int, queue: int, retry_after_s: int):
        self.semaphore = asyncio.Semaphore(workers)
        self.capacity = workers + queue
        self.active = 0
        self.retry_after_s = retry_after_s

    async def run(self, fn, *args):
        if self.active >= self.capacity:
            raise HTTPException(
                503,
                detail=f"The model is busy ({self.active} requests running or waiting); "
                "retry shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.active += 1
        try:
            async with self.semaphore:
                return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        finally:
            self.active -= 1


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (declared or streamed) gets 413 before
    FastAPI parses it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.limit:
            return await self._refuse(scope, send, int(declared))
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge(received)
            return message

        try:
            return await self.app(scope, counting_receive, send)
        except _TooLarge as e:
            return await self._refuse(scope, send, e.size)

    async def _refuse(self, scope, send, size: int):
        response = JSONResponse(
            {"detail": f"The request body ({size} bytes) is over the limit of {self.limit} bytes"},
            status_code=413,
        )
        await response(scope, None, send)


class _TooLarge(Exception):
    def __init__(self, size: int):
        self.size = size


def create_app(specs: Dict[str, ModelSpec], settings: ServerSettings = None, cache=None) -> FastAPI:
    """The app for the models ``specs`` (``cache``: a ModelCache to use, e.g. in tests)."""
    settings = settings or ServerSettings()
    cache = cache or ModelCache(specs, settings.max_loaded)
    limiters: Dict[str, _Limiter] = {}
    results: "collections.OrderedDict[str, Prediction]" = collections.OrderedDict()
    results_lock = threading.Lock()
    app = FastAPI(
        title="d2_instseg",
        description="Instance and semantic segmentation with d2_instseg's models.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/swagger-ui", StaticFiles(directory=swagger_ui_path), name="swagger")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(os.path.join(STATIC, "index.html"))

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="d2_instseg API",
            swagger_js_url="/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/swagger-ui/favicon-32x32.png",
        )

    @app.get("/healthz")
    async def healthz():
        """Liveness: answered by the event loop, also while predictions run."""
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        loaded = set(cache.loaded())
        return {"models": [{"name": n, "loaded": n in loaded} for n in specs]}

    def _limiter(name: str) -> _Limiter:
        if name not in specs:
            raise HTTPException(
                404, detail=f"No model {name!r}; the models are: {', '.join(sorted(specs))}"
            )
        if name not in limiters:
            limiters[name] = _Limiter(settings.workers, settings.queue, settings.retry_after_s)
        return limiters[name]

    def _predict(name: str, data: bytes) -> Dict:
        start = time.perf_counter()
        rgb, mode = decode_image(data, settings.max_pixels)
        decoded = time.perf_counter()
        model = cache.get(name)
        loaded = time.perf_counter()
        try:
            outputs = model.predictor(rgb[:, :, ::-1])  # the Predictor takes BGR, as cv2 reads
        except ValueError as e:  # the Predictor's own input checks (e.g. too large unresized)
            raise BadInput(422, f"The model cannot take this image: {e}") from None
        outputs = {k: v.to("cpu") for k, v in outputs.items() if k in ("instances", "sem_seg")}
        done = time.perf_counter()
        pred = Prediction(rgb, outputs, model.metadata, model.kind)
        timing = {
            "decode_ms": 1e3 * (decoded - start),
            "load_ms": 1e3 * (loaded - decoded),
            "predict_ms": 1e3 * (done - loaded),
        }
        return {"prediction": pred, "mode": mode, "timing": timing}

    @app.post("/v1/predict")
    async def predict(
        request: Request,
        model: str = Query(..., description="a model name of GET /v1/models"),
        threshold: float = Query(
            0.0, ge=0.0, le=1.0, description="minimum score of the instances returned"
        ),
        file: UploadFile = File(..., description="the image (PNG, JPEG, TIFF, BMP, ...)"),
    ):
        """Segment one uploaded image. Instance models return COCO-style ``instances`` (RLE
        masks, ``bbox`` [x, y, w, h], ``score``, ``category_id`` / ``category_name``, ``area``);
        semantic models ``classes`` (id, name, area, fraction). Also: image size, timing in ms,
        the result's ``id`` and links to its overlay, label image and COCO JSON."""
        received = time.perf_counter()
        limiter = _limiter(model)
        data = await file.read()
        try:
            out = await limiter.run(_predict, model, data)
        except BadInput as e:
            raise HTTPException(e.status, detail=e.message) from None
        pred: Prediction = out["prediction"]
        result_id = uuid.uuid4().hex
        with results_lock:
            results[result_id] = pred
            while len(results) > settings.max_results:
                results.popitem(last=False)
        height, width = pred.rgb.shape[:2]
        body = {
            "id": result_id,
            "model": model,
            "kind": pred.kind,
            "image": {"height": height, "width": width, "mode": out["mode"]},
            "threshold": threshold,
            "timing": dict(out["timing"], total_ms=1e3 * (time.perf_counter() - received)),
            "links": {
                kind: f"/v1/results/{result_id}/{kind}"
                for kind in ("overlay.png", "labels.png", "coco.json")
            },
        }
        if pred.kind == "instance":
            body["instances"] = coco_instances(pred, threshold)
        else:
            body["classes"] = semantic_classes(pred)
        return body

    def _result(result_id: str) -> Prediction:
        with results_lock:
            pred = results.get(result_id)
        if pred is None:
            raise HTTPException(404, detail=f"No result {result_id!r} (results are kept briefly)")
        return pred

    @app.get("/v1/results/{result_id}/overlay.png")
    async def overlay(result_id: str, threshold: float = Query(0.5, ge=0.0, le=1.0)):
        """The Visualizer overlay of a result, at another threshold without re-running the model."""
        pred = _result(result_id)
        png = await asyncio.get_running_loop().run_in_executor(None, overlay_png, pred, threshold)
        return Response(png, media_type="image/png")

    @app.get("/v1/results/{result_id}/labels.png")
    def labels(result_id: str, threshold: float = Query(0.5, ge=0.0, le=1.0)):
        """Instances: 16-bit PNG, 0 background, k = the k-th instance by score; semantic: class
        ids."""
        return Response(label_png(_result(result_id), threshold), media_type="image/png")

    @app.get("/v1/results/{result_id}/coco.json")
    def coco_json(result_id: str, threshold: float = Query(0.5, ge=0.0, le=1.0)):
        """The COCO results (RLE masks) of the instances with score >= threshold."""
        pred = _result(result_id)
        if pred.kind != "instance":
            raise HTTPException(409, detail="A semantic model's result has no instances")
        headers = {"Content-Disposition": f'attachment; filename="{result_id}.json"'}
        return JSONResponse(coco_instances(pred, threshold), headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        logger.exception(f"{request.method} {request.url.path} failed")
        return JSONResponse({"detail": f"Internal error: {type(exc).__name__}: {exc}"}, 500)

    return app
