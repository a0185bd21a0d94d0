"""The pen every sprite is drawn with (sprites.py): filled shapes on a luminance and a mask image at once,
in the canonical CANON x CANON frame, SUPER-times supersampled (PIL ImageDraw).
"""

from __future__ import annotations

from PIL import Image, ImageDraw

#: the canonical frame's side in px, and the supersampling factor of the drawing
CANON = 192
SUPER = 4


class Pen:
    """Draws filled shapes in object coordinates (u right, v up, both in [-1, 1]) on a luminance and a
    mask image at once, so every part of the object is also part of its silhouette."""

    def __init__(self, size: int = CANON * SUPER):
        self.size = size
        self.lum = Image.new("L", (size, size), 0)
        self.mask = Image.new("L", (size, size), 0)
        self._dl = ImageDraw.Draw(self.lum)
        self._dm = ImageDraw.Draw(self.mask)

    def p(self, u: float, v: float) -> tuple[float, float]:
        half = self.size * 0.47
        return (self.size / 2 + u * half, self.size / 2 - v * half)

    def _g(self, lum: float) -> int:
        return round(255 * min(max(lum, 0.0), 1.0))

    def poly(self, pts: list[tuple[float, float]], lum: float) -> None:
        xy = [self.p(u, v) for u, v in pts]
        self._dl.polygon(xy, fill=self._g(lum))
        self._dm.polygon(xy, fill=255)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float, lum: float) -> None:
        x0, y0 = self.p(cu - ru, cv + rv)
        x1, y1 = self.p(cu + ru, cv - rv)
        self._dl.ellipse([x0, y0, x1, y1], fill=self._g(lum))
        self._dm.ellipse([x0, y0, x1, y1], fill=255)

    def rect(self, u0: float, v0: float, u1: float, v1: float, lum: float) -> None:
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], lum)

    def rrect(self, u0: float, v0: float, u1: float, v1: float, r: float, lum: float) -> None:
        x0, y0 = self.p(min(u0, u1), max(v0, v1))
        x1, y1 = self.p(max(u0, u1), min(v0, v1))
        rad = r * self.size * 0.47
        self._dl.rounded_rectangle([x0, y0, x1, y1], radius=rad, fill=self._g(lum))
        self._dm.rounded_rectangle([x0, y0, x1, y1], radius=rad, fill=255)

    def line(self, pts: list[tuple[float, float]], width: float, lum: float) -> None:
        xy = [self.p(u, v) for u, v in pts]
        w = max(1, round(width * self.size * 0.47))
        self._dl.line(xy, fill=self._g(lum), width=w, joint="curve")
        self._dm.line(xy, fill=255, width=w, joint="curve")

    def chord(self, cu: float, cv: float, ru: float, rv: float, start: float, end: float, lum: float) -> None:
        x0, y0 = self.p(cu - ru, cv + rv)
        x1, y1 = self.p(cu + ru, cv - rv)
        self._dl.chord([x0, y0, x1, y1], start, end, fill=self._g(lum))
        self._dm.chord([x0, y0, x1, y1], start, end, fill=255)
