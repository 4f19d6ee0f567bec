"""Reading images that users give: bounded before they are decoded.

A photo, an image in a dataset folder or archive, or a frame of a video is untrusted: a small file can declare
a huge image (a 37 KB PNG can say 30000 x 30000 pixels, which decodes to 2.7 GB). So every image is checked
before it is decoded, by its file size and by the width and height its header declares:

- :data:`MAX_IMAGE_MB` (environment ``EMO_MAX_IMAGE_MB``, default 100): the largest image file;
- :data:`MAX_IMAGE_PIXELS` (``EMO_MAX_IMAGE_PIXELS``, default 200 million, a 16000 x 12500 photo): the most
  pixels an image may declare.

Over a limit, the error names the variable that raises it. File names that are not valid UTF-8 are read as
bytes by Python, not by OpenCV (whose reader crashes on them). This module imports nothing of ``emo`` but its
file helpers.
"""

from __future__ import annotations

import io
import os
import warnings

import cv2
import numpy as np

from emo.files import check_size, limit_from_env, printable

MAX_IMAGE_MB = limit_from_env("EMO_MAX_IMAGE_MB", 100)
MAX_IMAGE_PIXELS = int(limit_from_env("EMO_MAX_IMAGE_PIXELS", 200e6))


def declared_size(data: bytes) -> tuple[int, int] | None:
    """The (width, height) that an encoded image's header declares, read without decoding its pixels (Pillow
    reads only the header); None where the header is not one of an image format Pillow knows."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (Pillow's own decompression-bomb warning: we check the size here)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(io.BytesIO(data)) as im:
                    return im.size
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except Exception:  # (any damaged header: not an image we can size)
        return None


def check_pixels(width: int, height: int, name: str) -> None:
    """A one-line refusal for an image (or video frame) of more than :data:`MAX_IMAGE_PIXELS` pixels."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"{printable(name)} is {width:,} x {height:,} pixels, over the {MAX_IMAGE_PIXELS:,} an image "
                         "may have here: give a smaller image, or raise the limit with EMO_MAX_IMAGE_PIXELS=N")


def decode_image(data: bytes, name: str, gray: bool = False) -> np.ndarray:
    """The image encoded in ``data`` (``name`` says where it came from, for errors) as BGR (or ``gray``)
    uint8, after checking the size its header declares; a one-line ValueError for what cannot be decoded."""
    size = declared_size(data)
    if size is None:
        raise ValueError(f"{printable(name)} is not a readable image (damaged, or not an image format)")
    check_pixels(*size, name)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise ValueError(f"{printable(name)} is not a readable image (damaged, or not an image format)")
    return image


def read_image(path: str | os.PathLike, gray: bool = False) -> np.ndarray:
    """The image file at ``path``, bounded (:data:`MAX_IMAGE_MB`, :data:`MAX_IMAGE_PIXELS`) and refused in one
    line where it is not a regular file (a FIFO, a device) or not a readable image."""
    check_size(path, MAX_IMAGE_MB, "image file", "EMO_MAX_IMAGE_MB")
    with open(path, "rb") as f:
        data = f.read(int(MAX_IMAGE_MB * 2**20) + 1)
    return decode_image(data, os.fspath(path), gray)
