"""The one place that turns an image file into a uint8 HWC RGB array.

Every colour mode Pillow can open ends up as 3 channels in 0..255: alpha is composited on white
(dropping it would turn transparent areas black or into garbage colours), and high bit-depth
grayscale is scaled rather than clipped as ``Image.convert("RGB")`` does.
"""

from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from clusterbench.core.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# The IEND chunk with its fixed CRC: every complete PNG ends with it.
_PNG_IEND = b"IEND\xaeB`\x82"
_INT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;32", "I;32B"}


def is_image_file(path: str) -> bool:
    """True when ``path`` has one of ``IMAGE_EXTENSIONS`` (case-insensitive)."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def decode_image(path: str) -> np.ndarray:
    """Read and fully decode ``path``; raise ``DataError`` naming the file when it can't be used."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None
    return decode_bytes(data, path)


def decode_bytes(data: bytes, name: str, reduced: bool = False) -> np.ndarray:
    """Decode the bytes of an image file; ``name`` is only used in error messages.

    ``reduced`` lets JPEG decode at 1/8 scale: every byte is still decoded (so truncation and
    corruption still show), for a fraction of the time; used to check files, not to use them.
    """
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    try:
        with _strict_decoding():
            img = Image.open(io.BytesIO(data))
            if reduced:
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()  # open() only reads the header; truncation shows up here
            _check_complete(img, data)
    except Image.DecompressionBombError as e:
        raise DataError(f"{name}: {_bomb_message(e)}") from None
    except Image.DecompressionBombWarning as e:
        raise DataError(f"{name}: {_bomb_message(e)}") from None
    except UnidentifiedImageError:
        raise DataError(f"{name}: not a recognised image file") from None
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError...
        raise DataError(f"{name}: truncated or corrupt image ({_one_line(e)})") from None
    return to_rgb_array(_upright(img))


def _check_complete(img: Image.Image, data: bytes) -> None:
    """A PNG cut after its pixel data still decodes; only the missing end chunk shows the cut."""
    if img.format == "PNG" and data.rfind(_PNG_IEND) < 0:
        raise OSError("PNG end chunk (IEND) missing")


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """A loaded PIL image in any mode -> uint8 (H, W, 3) RGB."""
    mode = img.mode
    if mode in _INT_MODES:
        return _gray_to_rgb(_scale_int(np.asarray(img)))
    if mode == "F":
        return _gray_to_rgb(_scale_float(np.asarray(img)))
    if mode in ("1", "L"):
        return _gray_to_rgb(np.asarray(img.convert("L")))
    if mode == "P" and "transparency" in img.info:
        return _composite_on_white(np.asarray(img.convert("RGBA")))
    if mode in _ALPHA_MODES:
        return _composite_on_white(np.asarray(img.convert("RGBA")))
    if mode == "RGB":
        return np.asarray(img).copy()
    return np.asarray(img.convert("RGB"))  # P, CMYK, YCbCr, LAB, HSV


def _scale_int(arr: np.ndarray) -> np.ndarray:
    """16-bit data (the usual content of integer modes) maps 65535 -> 255 by dividing by 257.

    Mode ``I`` is 32-bit signed; values outside 0..65535 can only come from a wider range, so
    those images are stretched from their own min..max instead.
    """
    arr = arr.astype(np.int64)
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo >= 0 and hi <= 65535:
        return ((arr + 128) // 257).astype(np.uint8)
    return _stretch(arr.astype(np.float64), lo, hi)


def _scale_float(arr: np.ndarray) -> np.ndarray:
    """Float images are 0..1 by convention, sometimes 0..255; anything else is stretched."""
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        return np.rint(arr * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.rint(arr).astype(np.uint8)
    return _stretch(arr, lo, hi)


def _stretch(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.rint((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[:, :, :3].astype(np.uint32)
    alpha = rgba[:, :, 3:].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, as image viewers do; a broken EXIF block is not fatal."""
    try:
        if img.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return img  # the common case: skip exif_transpose's copy
        return ImageOps.exif_transpose(img)
    except Exception:
        return img


@contextmanager
def _strict_decoding():
    """Truncated files are errors and oversized images raise instead of only warning."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _bomb_message(e: Exception) -> str:
    return (
        f"pixel count exceeds Pillow's limit Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS} "
        f"(possible decompression bomb: {_one_line(e)})"
    )


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
