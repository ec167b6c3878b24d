#!/usr/bin/env python
"""Serve d2_instseg models: a page (choose a model, drop an image, see and download the result) and
a JSON API (``/docs``), with FastAPI and uvicorn.

    python tools/serve.py --models tools/serve_models.yaml          # after `make demo`
    python tools/serve.py --models models.yaml --host 0.0.0.0 --port 8000 --workers 2

``models.yaml`` maps each model name to ``{config: PATH, weights: PATH}`` (paths relative to the
file), optionally ``backend: torch`` and ``opts: [KEY, VALUE, ...]`` config overrides. A model is
loaded on its first request and kept (at most ``--max-loaded``). Each model runs ``--workers``
predictions at a time with ``--queue`` more waiting; beyond that the server answers 503 with
Retry-After. Uploads over ``--max-upload-mb`` or images over ``--max-megapixels`` get 413.
"""

import argparse
import logging
import sys

import uvicorn

import d2_instseg  # noqa: F401  (registers models and datasets)
from d2_instseg.serve.app import ServerSettings, create_app
from d2_instseg.serve.models import load_specs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", required=True, metavar="YAML", help="model name -> config, weights"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    defaults = ServerSettings()
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--queue", type=int, default=defaults.queue)
    parser.add_argument("--max-loaded", type=int, default=defaults.max_loaded)
    parser.add_argument("--max-upload-mb", type=float, default=defaults.max_body_bytes / 2**20)
    parser.add_argument("--max-megapixels", type=float, default=defaults.max_pixels / 2**20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        specs = load_specs(args.models)
    except ValueError as e:
        parser.error(str(e))
    settings = ServerSettings(
        max_body_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 2**20),
        workers=args.workers,
        queue=args.queue,
        max_loaded=args.max_loaded,
    )
    uvicorn.run(create_app(specs, settings), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
