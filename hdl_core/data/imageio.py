"""Decoding images the one way every encoder and view sees them: 8-bit RGB, EXIF applied."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .._checks import check_positive_int
from .dataset import DatasetError

# Images with more pixels than this are skipped (decompression bombs): 50 megapixels is
# above any camera photo in common use and below Pillow's own warning threshold (~89 MP).
DEFAULT_MAX_PIXELS = 50_000_000


def open_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image as 8-bit RGB, the way every encoder and view should see it.

    EXIF orientation is applied. Transparent images (RGBA, LA, PA, palette or single
    colour transparency) are composited on white; CMYK, grayscale and palette images are
    converted; 16-bit images (``I;16*``, and ``I`` holding values in 0..65535) are scaled
    to 8 bits (65535 -> 255), never clipped; other ``I`` and ``F`` images are scaled from
    their own min..max (``F`` in 0..1 is taken as 0..1). ICC profiles are not applied.
    Multi-frame files give their first frame.

    Parameters
    ----------
    path : str or Path
        The image file.
    max_pixels : int, default 50_000_000
        Larger images are refused before any pixel is decoded.

    Returns
    -------
    PIL.Image.Image
        A loaded ``RGB`` image, detached from the file.

    Raises
    ------
    DatasetError
        When the file cannot be read or decoded, or is over `max_pixels`.
    """
    max_pixels = check_positive_int(max_pixels, "max_pixels", error=DatasetError)
    return _open_rgb(path, max_pixels, draft_size=None)


def thumbnail(path: str | Path, size: int = 96) -> Image.Image:
    """A small RGB image for galleries, at most `size` × `size`, aspect ratio kept.

    JPEGs are decoded at reduced scale (draft mode), so thumbnails of big photos are cheap.

    Parameters
    ----------
    path : str or Path
        The image file.
    size : int, default 96
        Longest side in pixels.

    Returns
    -------
    PIL.Image.Image
        An ``RGB`` image.
    """
    size = check_positive_int(size, "size", error=DatasetError)
    image = _open_rgb(path, DEFAULT_MAX_PIXELS, draft_size=size)
    image.thumbnail((size, size))
    return image


def _open_rgb(path: str | Path, max_pixels: int, draft_size: int | None) -> Image.Image:
    try:
        with Image.open(path) as image:
            problem = pixel_limit_problem(image.size, max_pixels)
            if problem is not None:
                raise DatasetError(f"{path}: {problem}")
            if draft_size is not None and image.format == "JPEG":
                image.draft(image.mode, (draft_size, draft_size))
            return _to_rgb(_exif_transposed(image))
    except DatasetError:
        raise
    except Image.DecompressionBombError as error:
        raise DatasetError(f"{path}: image too large, possible decompression bomb ({error})") from None
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: not an image (Pillow cannot identify the file)") from None
    except Exception as error:
        raise DatasetError(f"{path}: cannot decode the image ({error or type(error).__name__})"
                           ) from None


def pixel_limit_problem(size: tuple[int, int], max_pixels: int) -> str | None:
    width, height = size
    if width * height > max_pixels:
        return (f"image too large: {width}×{height} = {width * height:,} pixels, over the "
                f"limit of {max_pixels:,} (possible decompression bomb)")
    return None


def _exif_transposed(image: Image.Image) -> Image.Image:
    """A loaded copy of `image`, turned as its EXIF orientation says.

    Unreadable EXIF (e.g. a corrupt PNG ``eXIf`` chunk, which the scan's checks do not
    read) leaves the pixels as stored rather than losing a good image to bad metadata.
    """
    try:
        return ImageOps.exif_transpose(image)
    except Exception:   # Pillow raises many types on bad EXIF; decode errors recur below
        return image.copy()


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

