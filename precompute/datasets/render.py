"""Procedural drawing of the synthetic HvM stimuli: 8 categories x 8 objects on 1/f backgrounds.

Each object is drawn once (PIL ImageDraw, 4x supersampled) into a canonical frame, shaded, and then
placed per stimulus with the HvM pose parameters of its row:

- image: 256 x 256 px grayscale spanning 8 degrees (32 px per degree), centre = fixation;
- position: `ty` is horizontal (+ right), `tz` vertical (+ up); 1 HvM unit = 64 px = 2 degrees, so the
  variation-6 ranges (ty in [-0.6, 0.6], tz in [-1.2, 1.2]) move the object centre up to 1.2 degrees
  sideways and 2.4 degrees up or down (objects near the vertical extremes are partly cut off, as in HvM);
- scale: `s` = 1 makes the object's canonical box (its longest side) 144 px = 4.5 degrees wide;
- rotation: `rxy` rotates in the image plane (counter-clockwise, degrees); `rxz` (depth, about the
  vertical axis) and `ryz` (depth, about the horizontal axis) are approximated by foreshortening the
  horizontal and vertical axes by cos(angle) (|cos| floored at 0.25 so the object never vanishes; a
  negative cos mirrors it: seen from behind) plus a lighting gradient across the turned axis;
- background: 1/f^alpha noise texture seeded by (seed, background_id), natural-image-like statistics.

Everything is a deterministic function of (seed, row): same seed -> identical pixels.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from precompute.datasets.pen import CANON, SUPER, Pen
from precompute.datasets.sprites import DRAWERS

log = logging.getLogger(__name__)

IMAGE_SIZE = 256
VISUAL_DEGREES = 8.0
PX_PER_DEG = IMAGE_SIZE / VISUAL_DEGREES
#: pixels per HvM position unit (documented mapping, module docstring)
PX_PER_HVM_UNIT = 64.0
#: width in pixels of the object's canonical box at s = 1
OBJECT_PX_AT_S1 = 144.0
MIN_FORESHORTENING = 0.25

CATEGORIES = ("Animals", "Boats", "Cars", "Chairs", "Faces", "Fruits", "Planes", "Tables")


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator seeded by a stable hash of (seed, parts): independent streams by name."""
    key = ":".join([str(int(seed)), *map(str, parts)]).encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


# --------------------------------------------------------------------------- objects and backgrounds
@dataclass(frozen=True)
class ObjectSprite:
    """A shaded object in its canonical CANON x CANON frame: luminance and alpha, float32 in [0, 1]."""

    lum: np.ndarray
    alpha: np.ndarray


def _object_variant(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits[-1]) if digits else sum(map(ord, name)) % 8


@lru_cache(maxsize=256)
def object_sprite(seed: int, category: str, name: str) -> ObjectSprite:
    """Draw, shade and texture one object (cached: 64 objects per dataset)."""
    from scipy import ndimage

    if category not in DRAWERS:
        raise ValueError(f"no drawing for category {category!r}; known: {sorted(DRAWERS)}")
    rng = rng_for(seed, "object", name)
    pen = Pen()
    arg = name if category in ("Fruits", "Animals") else _object_variant(name)
    DRAWERS[category](pen, rng, arg)
    lum = np.asarray(pen.lum.reduce(SUPER), dtype=np.float32) / 255.0
    alpha = np.asarray(pen.mask.reduce(SUPER), dtype=np.float32) / 255.0
    # 3-D look: darker towards the silhouette edge, light from the upper left, fine surface texture
    inside = alpha > 0.5
    depth = ndimage.distance_transform_edt(inside) / (0.08 * CANON)
    bulge = np.sqrt(np.clip(depth, 0, 1))
    v, u = np.mgrid[1 : -1 : CANON * 1j, -1 : 1 : CANON * 1j]
    light = 0.12 * (v - u) / 2
    tex = ndimage.gaussian_filter(rng.standard_normal((CANON, CANON)), 1.2) * 0.08
    shaded = lum * (0.72 + 0.28 * bulge) + light + tex
    lum = np.clip(np.where(alpha > 0, shaded / np.maximum(alpha, 1e-3), 0), 0, 1).astype(np.float32)
    return ObjectSprite(lum=lum, alpha=alpha)


@lru_cache(maxsize=4)
def _spectrum_grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """On the rfft2 grid: log spatial frequency (cycles/px, floored at 1/size), cos and sin of twice the
    orientation."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    logf = np.log(np.maximum(np.hypot(fx, fy), 1.0 / size)).astype(np.float32)
    ang = np.arctan2(fy, fx)
    return logf, np.cos(2 * ang).astype(np.float32), np.sin(2 * ang).astype(np.float32)


def background(seed: int, background_id: str, size: int = IMAGE_SIZE) -> np.ndarray:
    """A natural-looking 1/f^alpha noise texture (float32 in [0, 1]) determined by (seed, background_id).

    Amplitude falls as 1/f^alpha (alpha 1.1-1.7: natural images are ~1-1.4, larger is smoother) with a
    random orientation bias; complex Gaussian coefficients give random phases.
    """
    import scipy.fft

    rng = rng_for(seed, "background", background_id)
    alpha = rng.uniform(1.1, 1.7)
    theta = rng.uniform(0, np.pi)
    aniso_strength = rng.uniform(0, 0.6)
    mean, contrast, tilt = rng.uniform(0.35, 0.6), rng.uniform(0.06, 0.12), rng.uniform(-0.08, 0.08)
    logf, cos2, sin2 = _spectrum_grid(size)
    amp = np.exp(np.float32(-alpha) * logf)
    amp *= 1 + np.float32(aniso_strength) * (
        cos2 * np.float32(math.cos(2 * theta)) + sin2 * np.float32(math.sin(2 * theta))
    )
    amp[0, 0] = 0
    coef = rng.standard_normal((*amp.shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
    tex = scipy.fft.irfft2(coef * amp, s=(size, size))
    tex = (tex - tex.mean()) / (tex.std() + 1e-12)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)[:, None] * tilt  # sky/ground brightness gradient
    return np.clip(mean + contrast * tex + ramp, 0, 1).astype(np.float32)


def place_object(
    sprite: ObjectSprite, ty: float, tz: float, s: float, rxy: float, rxz: float, ryz: float, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """The sprite posed in a size x size image: (luminance, alpha), float32, alpha 0 outside the object."""
    fx = math.cos(math.radians(rxz))
    fy = math.cos(math.radians(ryz))
    fx = math.copysign(max(abs(fx), MIN_FORESHORTENING), fx)
    fy = math.copysign(max(abs(fy), MIN_FORESHORTENING), fy)
    k = s * OBJECT_PX_AT_S1 * (size / IMAGE_SIZE) / CANON
    th = math.radians(rxy)
    # forward map (canonical px, y down) -> output px: T + k * R(-th) * diag(fx, fy); PIL wants the inverse
    c, si = math.cos(th), math.sin(th)
    a11, a12 = k * c * fx, k * si * fy
    a21, a22 = -k * si * fx, k * c * fy
    det = a11 * a22 - a12 * a21
    i11, i12, i21, i22 = a22 / det, -a12 / det, -a21 / det, a11 / det
    cx = size / 2 + ty * PX_PER_HVM_UNIT * size / IMAGE_SIZE
    cy = size / 2 - tz * PX_PER_HVM_UNIT * size / IMAGE_SIZE
    h = CANON / 2
    data = (i11, i12, h - i11 * cx - i12 * cy, i21, i22, h - i21 * cx - i22 * cy)
    # lighting follows the depth rotation: the side turned towards the light gets brighter
    u = np.linspace(-1, 1, CANON, dtype=np.float32)
    lum = sprite.lum * (
        1 + 0.25 * math.sin(math.radians(rxz)) * u[None, :] + 0.25 * math.sin(math.radians(ryz)) * u[:, None]
    )
    out = []
    for arr in (np.clip(lum, 0, 1) * sprite.alpha, sprite.alpha):  # premultiplied: no dark fringes
        im = Image.fromarray(arr.astype(np.float32), mode="F")
        out.append(
            np.asarray(
                im.transform((size, size), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR), dtype=np.float32
            )
        )
    premult, alpha = out
    return premult, np.clip(alpha, 0, 1)


def render_stimulus(seed: int, row: dict) -> tuple[np.ndarray, np.ndarray]:
    """One stimulus from its metadata row: (8-bit image (256, 256), object alpha mask float32 (256, 256))."""
    sprite = object_sprite(seed, row["category"], row["object"])
    premult, alpha = place_object(sprite, row["ty"], row["tz"], row["s"], row["rxy"], row["rxz"], row["ryz"])
    bg = background(seed, row["background_id"])
    img = bg * (1 - alpha) + premult
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8), alpha


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit grayscale image (deterministic: fixed zlib settings, no metadata). Huffman-only
    zlib (compress_type 2) is 3x faster than the default level 6 and no larger on these noisy textures."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG", compress_level=1, compress_type=2)
    return buf.getvalue()
