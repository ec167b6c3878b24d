"""The models of the web app's tests: the session's briefly trained CenterMask (tests/conftest.py)
and an FCN-8s with random weights (a semantic model: any label map will do), a models.yaml naming
them, and a live uvicorn server on 127.0.0.1."""

import io
import socket
import threading
import time

import numpy as np
import pytest
import torch
import uvicorn
import yaml
from PIL import Image

from d2_instseg.engine import SafeCheckpointer, Trainer

from ..conftest import REPO, TRAINED_CENTERMASK, shapes_cfg


@pytest.fixture(scope="session")
def models_yaml(tmp_path_factory, trained_centermask):
    folder = tmp_path_factory.mktemp("serve_models")
    torch.manual_seed(0)
    fcn = Trainer.build_model(shapes_cfg("configs/shapes/fcn8s.yaml"))
    SafeCheckpointer(fcn, save_dir=str(folder)).save("fcn8s")
    centermask_opts = [str(v) for v in TRAINED_CENTERMASK[1:]]
    entries = {
        "centermask": {
            "config": f"{REPO}/{TRAINED_CENTERMASK[0]}",
            "weights": trained_centermask[2],
            "opts": centermask_opts,
        },
        "fcn8s": {"config": f"{REPO}/configs/shapes/fcn8s.yaml", "weights": "fcn8s.pth"},
    }
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(entries))
    return str(path)


def png_bytes(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def shapes_png():
    """(PNG bytes, RGB array) of the first shapes_tiny_val image."""
    from detectron2.data import DatasetCatalog

    path = DatasetCatalog.get("shapes_tiny_val")[0]["file_name"]
    with open(path, "rb") as f:
        data = f.read()
    return data, np.asarray(Image.open(path).convert("RGB"))


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port, in a thread of this process."""

    def __init__(self, app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
