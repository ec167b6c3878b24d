"""The web app's JSON API (FastAPI's test client): both kinds of model, the results in each form,
every kind of bad upload with the status it gets, and the page, its assets and the OpenAPI page
served without anything fetched from elsewhere."""

import io
import json
import re
import struct
import threading
import time
import zlib

import httpx
import numpy as np
import pycocotools.mask as mask_util
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from d2_instseg.serve.app import ServerSettings, create_app
from d2_instseg.serve.models import ModelCache, load_specs

from .conftest import LiveServer, png_bytes

LIMITS = ServerSettings(max_body_bytes=2 << 20, max_pixels=4 << 20, max_results=4)


@pytest.fixture(scope="module")
def client(models_yaml):
    with TestClient(create_app(load_specs(models_yaml), LIMITS)) as c:
        yield c


def _predict(client, data: bytes, model="centermask", name="x.png", **params):
    files = {"file": (name, data, "application/octet-stream")}
    return client.post("/v1/predict", params={"model": model, **params}, files=files)


def test_instance_model_answer_and_rle_round_trip(client, shapes_png):
    """COCO-style instances whose RLE decodes to masks of the image size with the stated area,
    the Visualizer overlay, a 16-bit label image with one label per instance over the threshold,
    and the COCO JSON at that threshold; a threshold filters without running the model again."""
    data, rgb = shapes_png
    r = _predict(client, data)
    assert r.status_code == 200, r.text
    body = r.json()
    h, w = rgb.shape[:2]
    assert body["kind"] == "instance" and body["image"] == {"height": h, "width": w, "mode": "RGB"}
    assert set(body["timing"]) == {"decode_ms", "load_ms", "predict_ms", "total_ms"}
    instances = body["instances"]
    assert len(instances) > 0
    for inst in instances:
        mask = mask_util.decode(inst["segmentation"])
        assert mask.shape == (h, w) and mask.sum() == inst["area"]
        assert inst["category_name"] in ("circle", "square", "triangle")
        assert inst["category_id"] in (1, 2, 3) and 0 <= inst["score"] <= 1
    scores = sorted((i["score"] for i in instances), reverse=True)
    t = scores[len(scores) // 2]  # keeps about half
    kept = sum(s >= t for s in scores)
    coco = client.get(body["links"]["coco.json"], params={"threshold": t}).json()
    assert len(coco) == kept and all(c["score"] >= t for c in coco)
    labels = np.asarray(
        Image.open(
            io.BytesIO(client.get(body["links"]["labels.png"], params={"threshold": t}).content)
        )
    )
    assert labels.dtype == np.uint16 and labels.shape == (h, w) and labels.max() <= kept
    overlay = Image.open(io.BytesIO(client.get(body["links"]["overlay.png"]).content))
    assert overlay.format == "PNG" and overlay.size[0] >= w


def test_semantic_model_class_areas(client, shapes_png):
    data, rgb = shapes_png
    r = _predict(client, data, model="fcn8s")
    assert r.status_code == 200, r.text
    classes = r.json()["classes"]
    assert sum(c["area"] for c in classes) == rgb.shape[0] * rgb.shape[1]
    assert {c["name"] for c in classes} <= {"background", "circle", "square", "triangle"}
    labels = Image.open(io.BytesIO(client.get(r.json()["links"]["labels.png"]).content))
    assert labels.size == (rgb.shape[1], rgb.shape[0])
    assert client.get(r.json()["links"]["coco.json"]).status_code == 409


def _huge_png(width: int, height: int) -> bytes:
    """A valid PNG of 1 x 1 pixel whose header claims width x height (IHDR and its CRC patched):
    what a decompression bomb looks like before decoding."""
    data = bytearray(png_bytes(np.zeros((1, 1, 3), np.uint8)))
    ihdr = data[12:29]  # chunk type + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def _jpeg(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    return buffer.getvalue()


def _saved(image, fmt) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


BAD_INPUTS = {
    # name: (bytes or a function of the shapes image, expected status, words of the message)
    "text file": (b"hello, this is not an image", 415, "not an image"),
    "empty file": (b"", 400, "empty"),
    "truncated PNG": (lambda data, rgb: data[: len(data) // 2], 400, "truncated"),
    "truncated JPEG": (lambda data, rgb: _jpeg(rgb)[:400], 400, "truncated"),
    "100000 x 100000 header": (_huge_png(100000, 100000), 413, "pixels"),
    "3 MB body": (bytes(3 << 20), 413, "over the limit"),
    "32-bit integer TIFF over 255": (
        lambda data, rgb: _saved(Image.fromarray(np.full((20, 20), 70000, np.int32)), "TIFF"),
        422,
        "cannot be used",
    ),
}
CONVERTED = {
    "16-bit PNG": lambda rgb: png_bytes(rgb[:, :, 0].astype(np.uint16) * 257),
    "RGBA PNG": lambda rgb: png_bytes(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])),
    "grayscale PNG": lambda rgb: png_bytes(rgb[:, :, 1]),
    "palette PNG": lambda rgb: _saved(Image.fromarray(rgb).convert("P", palette=1), "PNG"),
    "JPEG": _jpeg,
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_upload_gets_a_4xx_naming_the_problem(client, shapes_png, name):
    payload, status, words = BAD_INPUTS[name]
    data = payload(*shapes_png) if callable(payload) else payload
    r = _predict(client, data)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert client.get("/healthz").json() == {"status": "ok"}  # the server lives on


@pytest.mark.parametrize("name", CONVERTED)
def test_other_formats_are_converted_as_the_predictor_converts_arrays(client, shapes_png, name):
    data = CONVERTED[name](shapes_png[1])
    r = _predict(client, data)
    assert r.status_code == 200, r.text
    assert r.json()["image"]["height"] == shapes_png[1].shape[0]


def test_unknown_model_lists_the_models_and_missing_file_is_422(client, shapes_png):
    r = _predict(client, shapes_png[0], model="yolo")
    assert r.status_code == 404 and "centermask, fcn8s" in r.json()["detail"]
    assert client.post("/v1/predict", params={"model": "centermask"}).status_code == 422
    assert client.get("/v1/results/nope/overlay.png").status_code == 404


def test_page_docs_and_assets_are_all_served_here(client):
    """The page, its script and style, the OpenAPI page and Swagger UI's files: every asset they
    name is a local path, so nothing is fetched from the internet."""
    page = client.get("/").text
    docs = client.get("/docs").text
    for html in (page, docs):
        urls = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html) + re.findall(
            r'url: ?["\']([^"\']+)["\']', html
        )
        assert urls and all(u.startswith("/") for u in urls), urls
        for url in urls:
            assert client.get(url).status_code == 200, url
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/v1/models").json() == {
        "models": [{"name": "centermask", "loaded": True}, {"name": "fcn8s", "loaded": True}]
    }


class _SlowModel:
    """A model whose prediction takes ``seconds`` (the limiter's and liveness tests)."""

    kind = "semantic"
    metadata = None

    def __init__(self, seconds):
        self.seconds = seconds

    def predictor(self, image):
        import torch

        time.sleep(self.seconds)
        return {"sem_seg": torch.zeros(2, *image.shape[:2])}


def test_busy_model_gets_503_and_health_is_answered_meanwhile(models_yaml, shapes_png):
    """One worker, no queue, a 2-s prediction: a second request at the same time gets 503 with
    Retry-After at once, and /healthz answers within a fraction of that time."""
    from detectron2.data import MetadataCatalog

    specs = load_specs(models_yaml)
    slow = _SlowModel(2.0)
    slow.metadata = MetadataCatalog.get("shapes_sem_seg_val")
    cache = ModelCache(specs, loader=lambda spec: slow)
    app = create_app(specs, ServerSettings(workers=1, queue=0), cache=cache)
    data = shapes_png[0]
    with LiveServer(app) as server:
        url = f"{server.url}/v1/predict?model=centermask"
        first = {}

        def first_request():
            first["r"] = httpx.post(url, files={"file": ("a.png", data)}, timeout=30)

        thread = threading.Thread(target=first_request)
        thread.start()
        time.sleep(0.5)
        start = time.perf_counter()
        health = httpx.get(f"{server.url}/healthz", timeout=5)
        health_s = time.perf_counter() - start
        busy = httpx.post(url, files={"file": ("b.png", data)}, timeout=5)
        thread.join()
    assert health.json() == {"status": "ok"} and health_s < 0.5
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert "busy" in busy.json()["detail"]
    assert first["r"].status_code == 200, first["r"].text
    assert json.loads(first["r"].text)["classes"][0]["name"] == "background"


def test_rle_round_trip_equals_the_predictors_masks(client, models_yaml, shapes_png):
    """The RLE masks of the answer decode (pycocotools) to exactly the masks d2_instseg.Predictor
    gives for the same image and model, in the same order."""
    from d2_instseg.serve.models import build_model

    data, rgb = shapes_png
    answer = _predict(client, data).json()["instances"]
    model = build_model(load_specs(models_yaml)["centermask"])
    masks = model.predictor(rgb[:, :, ::-1])["instances"].pred_masks.numpy()
    assert len(answer) == len(masks) > 0
    for inst, mask in zip(answer, masks):
        assert (mask_util.decode(inst["segmentation"]).astype(bool) == mask).all()


def test_model_cache_loads_once_and_evicts_the_least_recently_used(models_yaml):
    """Four threads asking for one model at the same time load it once; with room for one model,
    asking for the other evicts it, and asking again loads it again."""
    specs = load_specs(models_yaml)
    loads = []

    def loader(spec):
        loads.append(spec.name)
        time.sleep(0.2)
        return spec.name

    cache = ModelCache(specs, capacity=1, loader=loader)
    threads = [threading.Thread(target=cache.get, args=("centermask",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["centermask"] and cache.loaded() == ["centermask"]
    assert cache.get("fcn8s") == "fcn8s" and cache.loaded() == ["fcn8s"]
    cache.get("centermask")
    assert loads == ["centermask", "fcn8s", "centermask"]


@pytest.mark.parametrize(
    "text, words",
    [
        ("a: 1\n", "must be a mapping"),
        ("m: {config: nope.yaml, weights: w.pth}\n", "does not exist"),
        ("m: {weights: w.pth}\n", "missing ['config']"),
        ("m: {config: c.yaml, weights: w.pth, size: 3}\n", "unknown ['size']"),
    ],
)
def test_models_yaml_errors_name_the_file_and_model(tmp_path, text, words):
    (tmp_path / "c.yaml").write_text("MODEL: {}\n")
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_specs(str(path))
    assert words in str(error.value) and str(path) in str(error.value)


def test_exported_backend_answers_as_the_torch_backend(tmp_path, models_yaml, client, shapes_png):
    """A models.yaml entry with ``backend: onnxruntime`` and an ONNX export of the same FCN-8s
    weights: the page's model answers with the class areas of the torch backend's model (argmax of
    the same logits, up to float rounding: within 0.5 % of the image)."""
    import yaml
    from detectron2.modeling import build_model

    from d2_instseg.engine import SafeCheckpointer, prepare_for_inference
    from d2_instseg.export import export_model

    from ..conftest import REPO, shapes_cfg

    spec = load_specs(models_yaml)["fcn8s"]
    cfg = shapes_cfg("configs/shapes/fcn8s.yaml")
    model = build_model(cfg).eval()
    SafeCheckpointer(model).load(spec.weights)
    onnx = export_model(prepare_for_inference(model, cfg), cfg, str(tmp_path), "onnx")
    entry = {"config": f"{REPO}/configs/shapes/fcn8s.yaml", "weights": onnx}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"fcn8s_onnx": {**entry, "backend": "onnxruntime"}}))
    data, rgb = shapes_png
    with TestClient(create_app(load_specs(str(path)), LIMITS)) as exported:
        r = _predict(exported, data, model="fcn8s_onnx")
    assert r.status_code == 200, r.text
    areas = {c["name"]: c["area"] for c in r.json()["classes"]}
    expected = {
        c["name"]: c["area"] for c in _predict(client, data, model="fcn8s").json()["classes"]
    }
    for name in set(areas) | set(expected):
        assert abs(areas.get(name, 0) - expected.get(name, 0)) <= 0.005 * rgb[..., 0].size


def test_models_yaml_refuses_an_unknown_backend(tmp_path):
    (tmp_path / "c.yaml").write_text("MODEL: {}\n")
    path = tmp_path / "models.yaml"
    path.write_text("m: {config: c.yaml, weights: w.onnx, backend: tensorrt}\n")
    with pytest.raises(ValueError, match="backend must be one of .*onnxruntime"):
        load_specs(str(path))
