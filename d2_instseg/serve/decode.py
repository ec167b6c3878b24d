"""Uploaded bytes -> an image the Predictor takes, or a ``BadInput`` with the HTTP status and a
clear message. The image's header is read before any pixel is decoded, so a decompression bomb is
refused before it costs memory."""

import io
import warnings
from typing import Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..engine.predictor import prepare_image


class BadInput(Exception):
    """An upload the server refuses: ``status`` (4xx) and ``message`` for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def decode_image(data: bytes, max_pixels: int) -> Tuple[np.ndarray, str]:
    """(H, W, 3) uint8 RGB array of an uploaded image file, and its original mode ("RGB", "L",
    "RGBA", "I;16", ...). Grayscale, alpha, palette, 16-bit and EXIF-rotated images are converted
    as ``d2_instseg.Predictor`` converts arrays.

    Raises BadInput: 400 empty or truncated / corrupt file, 413 more than ``max_pixels`` pixels,
    415 not an image format Pillow reads, 422 pixel values the Predictor cannot use.
    """
    if not data:
        raise BadInput(400, "The uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadInput(
            415, "The uploaded file is not an image Pillow can read (PNG, JPEG, ...)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadInput(
            413,
            f"The image's declared size is refused before decoding ({e}); the server's limit is "
            f"{max_pixels / 1e6:.1f}M pixels",
        ) from None
    except (OSError, SyntaxError, ValueError) as e:  # its header is cut short or corrupt
        raise BadInput(400, f"The image file is truncated or corrupt: {e}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadInput(
            413,
            f"The image is {width}x{height} = {width * height / 1e6:.1f}M pixels, over the "
            f"server's limit of {max_pixels / 1e6:.1f}M",
        )
    mode = image.mode
    try:
        image.load()  # decodes the pixels: truncated or corrupt data fails here
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as e:
        raise BadInput(400, f"The image file is truncated or corrupt: {e}") from None
    if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "LA"):
        alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    array = np.asarray(image)
    if array.dtype.byteorder == ">":  # big-endian 16-bit PNG
        array = array.astype(array.dtype.newbyteorder("="))
    try:
        return prepare_image(array, max_pixels), mode
    except ValueError as e:
        raise BadInput(422, f"The image ({mode}, {array.dtype}) cannot be used: {e}") from None
