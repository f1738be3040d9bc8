"""Decoding images the one way every encoder and view sees them: 8-bit RGB, EXIF applied.

Only raster formats are read (`RASTER_FORMATS`): JPEG, PNG, WebP, GIF, BMP and TIFF.
Pillow can open more (PostScript among them, which it hands to Ghostscript), so every
decode names the formats it accepts, whatever a file's extension says. Files are opened
through `hdl_core.data.files.open_dataset_file`, which refuses links and anything outside
the dataset folder at the moment of opening.
"""
from __future__ import annotations

import io
import re
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .._checks import check_positive_int
from .dataset import DatasetError
from .files import DatasetFile, open_dataset_file

# Images with more pixels than this are skipped (decompression bombs): 50 megapixels is
# above any camera photo in common use and below Pillow's own warning threshold (~89 MP).
DEFAULT_MAX_PIXELS = 50_000_000

# The formats read, by Pillow's name, with what the user knows them as. The one list: the
# scan's extensions come from it (through Pillow's registry) and every decode names it.
RASTER_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP",
                  "TIFF": "TIFF"}

# How each accepted format's files start, to tell a damaged image from a file that is not
# an image at all (Pillow says "cannot identify" for both, e.g. a PNG with a bad CRC).
_SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF",
               b"GIF89a": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}

# Modes Pillow resizes well as they are; palette, 1-bit and 16-bit images are converted
# to RGB first (resizing them directly would pick pixels instead of averaging them).
_SHRINK_FIRST_MODES = frozenset({"RGB", "RGBA", "L", "LA", "CMYK", "YCbCr"})

_IMAGE_EXTENSIONS: frozenset[str] | None = None


def image_extensions() -> frozenset[str]:
    """File extensions scanned as images: Pillow's own for the `RASTER_FORMATS`, lower case.

    >>> sorted(image_extensions())[:4]
    ['.apng', '.bmp', '.dib', '.gif']
    """
    global _IMAGE_EXTENSIONS
    if _IMAGE_EXTENSIONS is None:
        Image.init()
        _IMAGE_EXTENSIONS = frozenset(extension for extension, name
                                      in Image.registered_extensions().items()
                                      if name in RASTER_FORMATS or name == "DIB")
    return _IMAGE_EXTENSIONS


def open_raster(stream, name: str) -> Image.Image:
    """`Image.open` that tries the `RASTER_FORMATS` only; a damaged image says so.

    Raises
    ------
    DatasetError
        When the data is none of the accepted formats, naming `name`; a file that starts
        like one of them but cannot be read is reported as corrupt, not as "not an image".
    """
    try:
        with quiet_pillow():   # opening a JPEG parses its EXIF, and Pillow warns on damage
            return Image.open(stream, formats=list(RASTER_FORMATS) + ["DIB"])  # MPO: via JPEG
    except UnidentifiedImageError:
        kind = _sniff(stream)
        if kind is not None:
            raise DatasetError(f"{name}: corrupt image (starts like a {kind} file, but its "
                               "header is damaged)") from None
        raise DatasetError(f"{name}: not an image ({', '.join(RASTER_FORMATS.values())} "
                           "are read)") from None


def _sniff(stream) -> str | None:
    """The accepted format a file's first bytes announce, or None."""
    try:
        stream.seek(0)
        head = stream.read(16)
    except (OSError, ValueError):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for signature, kind in _SIGNATURES.items():
        if head.startswith(signature):
            return kind
    return None


def open_image(path, *, max_pixels: int = DEFAULT_MAX_PIXELS, root=None) -> Image.Image:
    """Open an image as 8-bit RGB, the way every encoder and view should see it.

    EXIF orientation is applied. Transparent images (RGBA, LA, PA, palette or single
    colour transparency) are composited on white; CMYK, grayscale and palette images are
    converted; 16-bit images (``I;16*``, and ``I`` holding values in 0..65535) are scaled
    to 8 bits (65535 -> 255), never clipped; other ``I`` and ``F`` images are scaled from
    their own min..max (``F`` in 0..1 is taken as 0..1). ICC profiles are not applied.
    Multi-frame files give their first frame.

    Parameters
    ----------
    path : str, Path or DatasetFile
        The image file (relative to `root` when that is given). Opened through
        `open_dataset_file`: a link, a hard link or a file outside `root` is refused.
    max_pixels : int, default 50_000_000
        Larger images are refused before any pixel is decoded.
    root : str or Path, optional
        The dataset folder the file must be in (a `DatasetFile` carries its own).

    Returns
    -------
    PIL.Image.Image
        A loaded ``RGB`` image, detached from the file.

    Raises
    ------
    DatasetError
        When the file is refused, cannot be read or decoded, or is over `max_pixels`;
        the message names the file by its path in the dataset.
    """
    max_pixels = check_positive_int(max_pixels, "max_pixels", error=DatasetError)
    return _open_rgb(path, root, max_pixels, thumbnail_size=None)


def thumbnail(path, size: int = 96, *, root=None) -> Image.Image:
    """A small RGB image for galleries, at most `size` × `size`, aspect ratio kept.

    The image is shrunk while it is decoded where the format allows (JPEG draft mode),
    and by integer reduction before anything else is done to it, so a 50-megapixel file
    costs one decode, not a decode plus full-size rotations and colour conversions.

    Parameters
    ----------
    path : str, Path or DatasetFile
        The image file; see `open_image`.
    size : int, default 96
        Longest side in pixels.
    root : str or Path, optional
        The dataset folder the file must be in.

    Returns
    -------
    PIL.Image.Image
        An ``RGB`` image.
    """
    size = check_positive_int(size, "size", error=DatasetError)
    return _open_rgb(path, root, DEFAULT_MAX_PIXELS, thumbnail_size=size)


def _open_rgb(path, root, max_pixels: int, thumbnail_size: int | None) -> Image.Image:
    name = _shown(path, root)
    try:
        with open_dataset_file(path, root) as stream:
            return _rgb_of(stream, name, max_pixels, thumbnail_size)
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(f"{name}: cannot decode the image ({describe_error(error)})") from None


def decode_image(data: bytes, name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """`open_image` for bytes already read through the dataset's door (a Ray Data read of
    files the scan accepted): the same formats, limits, orientation and colour rules.

    Raises
    ------
    DatasetError
        Named by `name` (the file's path in the dataset).
    """
    max_pixels = check_positive_int(max_pixels, "max_pixels", error=DatasetError)
    return _rgb_of(io.BytesIO(data), name, max_pixels, None)


def _rgb_of(stream, name: str, max_pixels: int, thumbnail_size: int | None) -> Image.Image:
    try:
        with open_raster(stream, name) as image:
            problem = pixel_limit_problem(image.size, max_pixels)
            if problem is not None:
                raise DatasetError(f"{name}: {problem}")
            if thumbnail_size is not None and image.mode in _SHRINK_FIRST_MODES:
                # JPEG draft mode and integer reduction, before rotation and conversion
                image.thumbnail((thumbnail_size, thumbnail_size), reducing_gap=3.0)
            rgb = _to_rgb(_exif_transposed(image))
            if thumbnail_size is not None:
                rgb.thumbnail((thumbnail_size, thumbnail_size))
            return rgb
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError(f"{name}: image too large, possible decompression bomb") from None
    except Exception as error:
        raise DatasetError(f"{name}: cannot decode the image ({describe_error(error)})") from None


def _shown(path, root) -> str:
    """How messages name a file: its path in the dataset, or the path as given."""
    if isinstance(path, DatasetFile) or root is None:
        return str(path)
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


def describe_error(error: BaseException) -> str:
    """A decoder's complaint fit to show a user: no file paths, no command lines, short.

    >>> describe_error(OSError("gs -q -sOutputFile=/tmp/tmpab12 failed"))
    'OSError'
    >>> describe_error(SyntaxError("broken PNG file"))
    'broken PNG file'
    """
    message = " ".join(str(error).split())
    if not message or len(message) > 160 or re.search(r"(^|[\s'\"(=])[/\\~]|\w:\\|-s\w+=", message):
        return type(error).__name__
    return message


def pixel_limit_problem(size: tuple[int, int], max_pixels: int) -> str | None:
    width, height = size
    if width * height > max_pixels:
        return (f"image too large: {width}×{height} = {width * height:,} pixels, over the "
                f"limit of {max_pixels:,} (possible decompression bomb)")
    return None


def _exif_transposed(image: Image.Image) -> Image.Image:
    """`image`, loaded and turned as its EXIF orientation says.

    Unreadable EXIF (e.g. a corrupt PNG ``eXIf`` chunk, which the scan's checks do not
    read) leaves the pixels as stored rather than losing a good image to bad metadata,
    and Pillow's warnings about it are not printed: the image is fine to use.
    """
    try:
        with quiet_pillow():
            orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:   # Pillow raises many types on bad EXIF; decode errors recur below
        orientation = 1
    image.load()
    method = _TRANSPOSE.get(orientation)
    return image.copy() if method is None else image.transpose(method)


_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_QUIET_LOCK = threading.Lock()


@contextmanager
def quiet_pillow():
    """Pillow's warnings about damaged metadata (EXIF tags it skips) not printed on stderr.

    The image is still used, so the warning only alarms the user. Warning filters are
    global, so the lock keeps threads from interleaving them; it is held only while a
    header or EXIF block is parsed, never during a decode.
    """
    with _QUIET_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode (see `open_image`)."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit, 32-bit integer or float pixels to 0..255 without clipping."""
    is_float = values.dtype.kind == "f"
    if not is_float and values.size and values.min() >= 0 and values.max() <= 65535:
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)   # 65535 -> 255
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if is_float and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    span = high - low if high > low else 1.0
    scaled = np.nan_to_num((values - low) / span, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
