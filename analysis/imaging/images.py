"""Real images for the feature-map views: bundled photographs, loading with clear errors, and the
official preprocessing.

Bundled photographs come from scikit-image's data module; the three below ship inside the
scikit-image wheel (no download). ``load_image`` also reads any PNG / JPEG / BMP / TIFF / WebP file
(or bytes, for uploads) into an RGB ``uint8`` array; anything unreadable raises ``ImageError``
naming the file. ``read_rgb`` gives a file's stored pixels as a Pillow RGB image (the COCO loader's
reader). Both refuse an image above ``MAX_PIXELS`` from the size in its header, before decoding
(``Image.open`` reads only the header), and turn Pillow's decompression-bomb guard into ``ImageError``.

Preprocessing (``prepare`` / ``preprocess``) follows the official repositories:

- RGB channel order, values / 255, ImageNet mean ``(0.485, 0.456, 0.406)`` and std
  ``(0.229, 0.224, 0.225)`` (``transforms.Normalize`` in every official repo).
- With a person box ``(x, y, w, h)`` (pose, as the official top-down pipeline): the box is widened to
  the input aspect ratio, enlarged by 1.25 (``_box2cs``) and cropped with an affine warp to the input
  size (``get_affine_transform`` + ``cv2.warpAffine``, bilinear, zero border; rotation 0).
- Without a box (the whole image, every family): resized keeping the aspect ratio so it covers the
  input size, then centre-cropped (no padding, no distortion). Classification uses the official
  ImageNet validation crop: the covering resize is 1/0.875 larger (``Resize(256)`` +
  ``CenterCrop(224)`` at 224x224).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from analysis.imaging.topdown import box_to_center_scale, get_affine_transform, warp
from hrnet_core.errors import UserInputError, quote

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Official top-down pose: boxes are enlarged by 1.25 around their centre (lib/dataset/coco.py _xywh2cs).
# Official ImageNet validation crop: Resize(int(224 / 0.875)) then CenterCrop(224).
CLS_CROP_FRACTION = 0.875
MAX_PIXELS = 64_000_000  # refuse decompression bombs (PIL warns at 89M and fails at 179M)


class ImageError(UserInputError):
    """An image that cannot be used: missing, unreadable, not an image, corrupt or too large."""


@dataclass(frozen=True)
class BundledImage:
    """A real photograph shipped with scikit-image (public domain or CC0; see ``skimage.data``)."""

    name: str
    description: str
    loader: Callable[[], np.ndarray]
    # A person (or subject) box (x, y, w, h) in the photograph's pixels, for the pose crop.
    box: tuple[float, float, float, float] | None = None

    def load(self) -> np.ndarray:
        return _as_rgb_uint8(np.asarray(self.loader()), self.name)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


BUNDLED: dict[str, BundledImage] = {
    "astronaut": BundledImage(
        "astronaut",
        "Eileen Collins, NASA astronaut (512x512, NASA, public domain): a person, for pose",
        _skimage("astronaut"),
        box=(46.0, 52.0, 307.0, 408.0),
    ),
    "coffee": BundledImage("coffee", "A cup of coffee on a saucer (400x600, Rachel Michetti, CC0)", _skimage("coffee")),
    "chelsea": BundledImage("chelsea", "Chelsea the cat (300x451, Stefan van der Walt, CC0)", _skimage("chelsea")),
}
DEFAULT_IMAGE = "astronaut"


def _as_rgb_uint8(arr: np.ndarray, source: str) -> np.ndarray:
    """Any 2-D / 3-D numeric array (gray, gray+alpha, RGB, RGBA; uint8, uint16, bool or float in [0, 1])
    as a contiguous ``uint8`` RGB ``(H, W, 3)`` array. Alpha is composited over white."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(f"{source}: not an image array (shape {tuple(np.shape(arr))}; expected (H, W), (H, W, 3) or (H, W, 4))")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError(f"{source}: image has NaN or infinite values")
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype != np.uint8:
        if a.min() < 0 or a.max() > 255:
            raise ImageError(f"{source}: {a.dtype} image values outside 0..255")
        a = a.astype(np.uint8)
    channels = a.shape[2]
    if channels in (2, 4):  # alpha over white
        alpha = a[:, :, -1:].astype(np.float32) / 255.0
        colour = a[:, :, :-1].astype(np.float32)
        a = (colour * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
        channels -= 1
    if channels == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


@contextlib.contextmanager
def _decoding(source: str) -> Iterator[None]:
    """What Pillow raises for a bad file, as ``ImageError`` naming ``source``; its decompression-bomb
    warning (89M to 179M pixels) counts as an error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not an image file (expected PNG, JPEG, BMP, TIFF or WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{source}: image is too large (decompression bomb guard)") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
        detail = str(err).splitlines()[0][:120] if str(err) else err.__class__.__name__
        raise ImageError(f"{source}: unreadable or corrupt image ({detail})") from None


def _open_bounded(fp, source: str) -> Image.Image:
    """``Image.open`` (the header only), refused above ``MAX_PIXELS`` before any pixel is decoded. Call it
    inside ``_decoding``."""
    im = Image.open(fp)
    if im.width * im.height > MAX_PIXELS:
        size = f"{im.width}x{im.height}"
        im.close()
        raise ImageError(f"{source}: {size} image is too large (over {MAX_PIXELS // 1_000_000} megapixels)")
    return im


def _open(data: bytes | Path, source: str) -> np.ndarray:
    with _decoding(source), _open_bounded(io.BytesIO(data) if isinstance(data, bytes) else data, source) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            arr = arr / 65535.0 if arr.max() > 255 else arr / 255.0
            return _as_rgb_uint8(arr, source)
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if ("transparency" in im.info or im.mode in ("PA", "RGBa")) else "RGB")
        return _as_rgb_uint8(np.asarray(im), source)


def read_rgb(path: str | Path) -> Image.Image:
    """The stored pixels of image file ``path`` as a Pillow RGB image, as ``Image.open(path).convert("RGB")``
    (no EXIF rotation: annotation coordinates refer to the stored pixels).

    Raises ``ImageError`` naming the file for a missing, unreadable, non-image or corrupt one, and for one
    above ``MAX_PIXELS`` (refused from its header, before decoding; Pillow's bomb guard included).
    """
    source = str(path)
    if not Path(path).is_file():
        raise ImageError(f"{source}: no such image file")
    with _decoding(source), _open_bounded(path, source) as im:
        return im.convert("RGB")


def load_image(source: str | Path | bytes | np.ndarray) -> np.ndarray:
    """An RGB ``uint8`` ``(H, W, 3)`` array from a bundled name (``astronaut``, ``coffee``, ``chelsea``),
    an image file path, raw file bytes (an upload) or an array.

    Raises ``ImageError`` naming the file for a missing, unreadable, non-image, corrupt or oversized one.
    """
    if isinstance(source, np.ndarray):
        return _as_rgb_uint8(source, "<array>")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageError("<upload>: empty file")
        return _open(data, "<upload>")
    if isinstance(source, str) and source in BUNDLED:
        return BUNDLED[source].load()
    path = Path(source)
    if not path.exists():
        names = ", ".join(BUNDLED)
        raise ImageError(f"{path}: no such image file (or a bundled photograph: {names})")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({err.__class__.__name__})") from None
    if not data:
        raise ImageError(f"{path}: empty file")
    return _open(data, str(path))


def bundled_box(source) -> tuple[float, float, float, float] | None:
    """The subject box of a bundled photograph named ``source``; None for anything else."""
    if isinstance(source, str) and source in BUNDLED:
        return BUNDLED[source].box
    return None


# ---- geometry ----------------------------------------------------------------------------------
def affine_crop(img: np.ndarray, box: tuple[float, float, float, float], input_hw: tuple[int, int]) -> np.ndarray:
    """The official pose crop of ``box`` (x, y, w, h) to ``input_hw`` (H, W): the box widened to the input's
    aspect ratio and enlarged 1.25x, warped bilinearly with a zero border (``analysis.imaging.topdown``).

    Raises ``ImageError`` for a box without positive width and height.
    """
    if box[2] <= 0 or box[3] <= 0:
        raise ImageError(f"person box {quote(box)}: width and height must be positive")
    out_h, out_w = input_hw
    center, scale = box_to_center_scale(box, out_w / out_h)
    m = get_affine_transform(center, scale, 0, (out_w, out_h))
    return np.asarray(warp(Image.fromarray(img), m, (out_w, out_h)))


def center_crop_resize(img: np.ndarray, input_hw: tuple[int, int], crop_fraction: float = 1.0) -> np.ndarray:
    """Resize keeping the aspect ratio so the image covers ``input_hw / crop_fraction``, then take the
    centred ``input_hw`` (H, W) crop. No padding and no distortion."""
    out_h, out_w = input_hw
    h, w = img.shape[:2]
    scale = max(out_h / h, out_w / w) / crop_fraction
    new_h, new_w = max(out_h, round(h * scale)), max(out_w, round(w * scale))
    im = Image.fromarray(img)
    if (new_h, new_w) != (h, w):
        im = im.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    return np.asarray(im.crop((left, top, left + out_w, top + out_h)))


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """``uint8`` RGB ``(H, W, 3)`` -> normalised float32 ``(1, 3, H, W)`` (ImageNet mean and std)."""
    x = torch.from_numpy(np.array(crop, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0).contiguous()


def prepare(
    img: np.ndarray,
    input_hw: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
    family: str | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """The network's view of ``img``: ``(crop, x)`` with ``crop`` the ``uint8`` ``(H, W, 3)`` pixels the
    model sees (for overlays) and ``x`` the normalised ``(1, 3, H, W)`` tensor.

    ``box`` (x, y, w, h) -> official pose affine crop; otherwise cover-resize + centre crop (with the
    0.875 ImageNet validation crop for ``family == "cls"``).
    """
    img = _as_rgb_uint8(img, "<image>")
    input_hw = (int(input_hw[0]), int(input_hw[1]))
    if box is not None:
        crop = affine_crop(img, box, input_hw)
    else:
        crop = center_crop_resize(img, input_hw, CLS_CROP_FRACTION if family == "cls" else 1.0)
    return crop, to_tensor(crop)


def preprocess(
    img: np.ndarray,
    input_hw: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
    family: str | None = None,
) -> torch.Tensor:
    """Normalised ``(1, 3, H, W)`` float32 tensor of ``img`` at ``input_hw`` (see ``prepare``)."""
    return prepare(img, input_hw, box, family)[1]


def denormalize(x: torch.Tensor) -> np.ndarray:
    """Inverse of ``to_tensor`` for one image: ``(1, 3, H, W)`` or ``(3, H, W)`` -> ``uint8`` ``(H, W, 3)``."""
    x = x.detach().float().cpu().reshape(-1, *x.shape[-2:])[:3]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (((x * std + mean).clamp(0, 1) * 255 + 0.5).to(torch.uint8)).permute(1, 2, 0).numpy()


__all__ = [
    "BUNDLED",
    "DEFAULT_IMAGE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BundledImage",
    "ImageError",
    "affine_crop",
    "bundled_box",
    "center_crop_resize",
    "denormalize",
    "load_image",
    "prepare",
    "preprocess",
    "read_rgb",
    "to_tensor",
]
