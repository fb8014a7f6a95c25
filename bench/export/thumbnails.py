"""Small images of a cluster's members for the browser page, as data URIs: from the user's file,
or for items without one (digits, video frames) from the dataset loaded again as the run named it."""

from __future__ import annotations

import base64
import io

import numpy as np

SIDE = 96  # pixels, the longer side
SMALL = 32  # images this small are enlarged with hard edges and kept as PNG


def data_uri(image: np.ndarray) -> str:
    """An image (uint8 HWC) as a ``SIDE`` px data URI: JPEG for photos, PNG for tiny images."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    pil = Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    if max(pil.size) <= SMALL:
        scale = max(1, SIDE // max(pil.size))
        pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST).save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    pil.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    pil.convert("RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def from_file(path) -> str | None:
    """The thumbnail of an image file; None when it is not an image that decodes."""
    from clusterbench.core.errors import DataError
    from clusterbench.datasets.images import decode_image

    try:
        return data_uri(decode_image(str(path)))
    except DataError:
        return None


def dataset_images(spec: str | None, n: int):
    """``(image(i) function, None)`` for the dataset ``spec`` loaded again, when it has images and
    the same ``n`` items as the run; else ``(None, why not)``."""
    if not spec:
        return None, "the run does not name its dataset"
    from clusterbench.core.catalog import registries
    from clusterbench.core.errors import one_line_reason
    from clusterbench.core.registry import Spec

    try:
        datasets = registries()[0]
        data = datasets.create(datasets.validate(Spec.parse(spec))).load()
    except Exception as exc:  # noqa: BLE001 - thumbnails are extra: the folders are written regardless
        return None, f"dataset {spec} could not be loaded again ({one_line_reason(exc)})"
    if not data.has_images:
        return None, f"dataset {spec} holds features, not images"
    if len(data) != n:
        return None, f"dataset {spec} now has {len(data)} items, the run had {n}"
    return data.image, None
