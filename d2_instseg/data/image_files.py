"""Image files given on a command line: folders expanded, and any image read as it is stored
(8 / 16-bit, float TIFF, grayscale, alpha) for ``d2_instseg.Predictor``, which converts it."""

import glob
import os
from typing import List, Sequence

import cv2
import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "list_images", "read_image_file"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(inputs: Sequence[str]) -> List[str]:
    """Files, and the images of folders (sorted, not recursive); ValueError naming any path that
    is neither an image file nor a folder with images."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(
                f
                for f in glob.glob(os.path.join(path, "*"))
                if f.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise ValueError(f"--input folder {path!r} contains no images")
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(f"--input {path!r} does not exist")
    return files


def read_image_file(path: str) -> np.ndarray:
    """(H, W) or (H, W, C) array with the file's own dtype, channels in BGR(A) order (as
    ``cv2.imread`` gives and Detectron2's predictors take). TIFF through tifffile (multi-sample
    16-bit and float files; a stack's first page), the rest through OpenCV. ValueError naming the
    file when it cannot be read."""
    if path.lower().endswith((".tif", ".tiff")):
        import tifffile

        try:
            image = tifffile.imread(path, key=0)
        except Exception as e:  # tifffile raises several types for a damaged file
            raise ValueError(f"{path}: not a readable TIFF ({e})") from e
        if image.ndim < 2 or image.size == 0:  # a damaged file may read as an empty array
            raise ValueError(f"{path}: not a readable TIFF (no image data, shape {image.shape})")
        if image.ndim == 3 and image.shape[2] in (3, 4):
            image = image[:, :, [2, 1, 0, *range(3, image.shape[2])]]  # RGB(A) -> BGR(A)
        return image
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image
