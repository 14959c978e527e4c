"""Reading image and label files by one set of rules, for training, checking and prediction alike.

The rules:

- **Truncated files are rejected** with their path. libjpeg decodes a truncated JPEG with grey fill and
  only a warning, so OpenCV decodes only JPEGs and PNGs that end with their end marker; any other file
  (other formats, or a JPEG/PNG without its end marker) is decoded by Pillow, which raises on truncated
  data. A JPEG with data after its end marker (e.g. a phone's "motion photo") still reads.
- **EXIF orientation** (tag 274) is applied: :func:`read_image` returns the image upright, as photo
  viewers show it. A mask is turned by the same transform as its image (see
  :func:`lightning_seg.data.files.FileSource.load` for how a mask already drawn upright is recognised).
- Images are ``H×W×3`` RGB uint8 (greyscale, palette and 16-bit files converted); labels are returned as
  stored (palette indices, grey levels, or RGB).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

#: File extensions read as images or masks (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")

#: EXIF orientation → (quarter turns counter-clockwise for ``np.rot90``, mirror left-right first).
_ORIENTATIONS = {1: (0, False), 2: (0, True), 3: (2, False), 4: (2, True), 5: (1, True), 6: (3, False),
                 7: (3, True), 8: (1, False)}  # fmt: skip
_EXIF_ORIENTATION = 0x0112
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def exif_orientation(path: Path) -> int:
    """The EXIF orientation (1–8) stored in ``path``'s header; 1 (upright) when absent or invalid."""
    try:
        with Image.open(path) as pil:
            if pil.format == "PNG":  # Pillow's getexif() decodes a whole PNG; eXIf precedes the pixel data
                exif = Image.Exif()
                if pil.info.get("exif"):
                    exif.load(pil.info["exif"])
            else:
                exif = pil.getexif()
            value = exif.get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return int(value) if value in _ORIENTATIONS else 1


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an ``H×W[×C]`` array stored with EXIF ``orientation`` into its upright view."""
    turns, mirror = _ORIENTATIONS[orientation]
    if mirror:
        array = array[:, ::-1]
    return np.ascontiguousarray(np.rot90(array, k=turns)) if turns or mirror else array


def oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """``(height, width)`` after :func:`orient` of a stored ``size``."""
    return (size[1], size[0]) if _ORIENTATIONS[orientation][0] % 2 else size


def _looks_complete(path: Path) -> bool:
    """Whether a file is a JPEG/PNG that ends with its end marker (decoded fast by OpenCV)."""
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        return False
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 64))
        tail = handle.read().rstrip(b"\x00\r\n ")
    return tail.endswith(_PNG_END) if suffix == ".png" else tail.endswith(b"\xff\xd9")


def _pil_rgb(path: Path) -> np.ndarray:
    """Decode with Pillow, which raises on truncated data."""
    with Image.open(path) as pil:
        pil.load()
        return np.asarray(pil.convert("RGB"))


def read_image_stored(path: Path) -> np.ndarray:
    """Decode an image file as ``H×W×3`` RGB uint8 as stored (no EXIF orientation applied).

    Raises:
        ValueError: naming the file, when it cannot be decoded or is truncated.
    """
    if not _looks_complete(path):
        try:
            return _pil_rgb(path)  # raises on truncated data
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            reason = "not an image" if "cannot identify" in str(error) else "the file is truncated or damaged"
            raise ValueError(f"cannot read image {path}: {reason} ({error})") from None
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is not None:
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return _pil_rgb(path)  # a file whose extension does not match its content
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None


def read_image(path: Path) -> np.ndarray:
    """Decode an image file as ``H×W×3`` RGB uint8, upright (EXIF orientation applied).

    Raises:
        ValueError: naming the file, when it cannot be decoded or is truncated.
    """
    return orient(read_image_stored(path), exif_orientation(path))


def read_label(path: Path, grey: bool = False) -> np.ndarray:
    """Decode a label file as stored: ``H×W`` (indexed, greyscale) or ``H×W×3`` (colour) array.

    Palette PNGs give their palette indices, which is how VOC and many tools store class ids. No EXIF
    orientation is applied here (the image's orientation decides, see the module docstring).

    Args:
        path: the label file.
        grey: return ``H×W`` brightness instead (palettes resolved to grey), for binary annotations.

    Raises:
        ValueError: naming the file, when it cannot be decoded or is truncated.
    """
    try:
        with Image.open(path) as pil:
            pil.load()
            if grey:
                return np.asarray(pil.convert("L"))
            if pil.mode in {"P", "L", "I", "I;16", "I;16B", "I;16L"}:
                return np.asarray(pil)
            if pil.mode == "1":
                return np.asarray(pil.convert("L"))
            return np.asarray(pil.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read mask {path}: {error}") from None


def stored_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file as stored, read from its header only."""
    try:
        with Image.open(path) as pil:
            return pil.height, pil.width
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None
