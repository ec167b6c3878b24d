"""tools/demo.py on a folder of images and on a video (random-init model: only the I/O is
tested)."""

import os
import sys

import cv2
import numpy as np
import pytest

from ..conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import demo  # noqa: E402

CONFIG = os.path.join(REPO, "configs/shapes/mask_rcnn_R18_FPN.yaml")


def _args(*extra):
    return demo.argument_parser().parse_args(
        ["--config-file", CONFIG, *extra, "--confidence-threshold", "0.0", "MODEL.WEIGHTS", ""]
    )


def test_folder_of_images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (("a.png", (60, 90, 3)), ("b.jpg", (100, 70, 3))):
        cv2.imwrite(str(folder / name), rng.integers(0, 255, shape, dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    written = demo.main(_args("--input", str(folder), "--output", str(tmp_path / "out")))
    assert sorted(os.path.basename(p) for p in written) == ["a.png", "b.png"]
    # overlays are drawn enlarged to 480 px on the long side, keeping the aspect ratio
    assert cv2.imread(written[0]).shape[:2] == (320, 480)


def test_video(tmp_path):
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for i in range(3):
        writer.write(np.full((64, 96, 3), 40 * i, np.uint8))
    writer.release()
    out = str(tmp_path / "out.mp4")
    demo.main(_args("--video-input", video, "--output", out))
    result = cv2.VideoCapture(out)
    frames = 0
    while result.read()[0]:
        frames += 1
    assert frames == 3


def test_missing_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="nope.png"):
        demo.main(_args("--input", str(tmp_path / "nope.png"), "--output", str(tmp_path / "o")))
