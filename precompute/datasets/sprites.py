"""The eight HvM categories drawn procedurally (with the Pen of pen.py, SUPER-times supersampled) in a canonical
CANON x CANON frame: faces, cars, chairs, tables, planes, boats, fruits and animals, 8 objects each. Each
drawing is a deterministic function of its generator; precompute/datasets/render.py shades the drawing,
places it per stimulus and puts it on a background.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from precompute.datasets.pen import Pen


def _pick(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


# --------------------------------------------------------------------------- the eight categories
def draw_face(pen: Pen, rng: np.random.Generator, k: int) -> None:
    skin = _pick(rng, 0.6, 0.85)
    hair = _pick(rng, 0.05, 0.35) if k != 5 else 0.85
    rx, ry = _pick(rng, 0.5, 0.62), _pick(rng, 0.72, 0.82)
    cv = 0.08
    pen.rect(-0.18, -0.95, 0.18, cv - ry + 0.1, skin * 0.85)  # neck
    pen.ellipse(0, -1.0, 0.7, 0.18, _pick(rng, 0.2, 0.6))  # shoulders / collar
    if k % 3 == 0:  # long hair falls behind the head
        pen.rrect(-rx - 0.1, cv + ry * 0.6, rx + 0.1, cv - ry * 0.7, 0.3, hair)
    pen.ellipse(-rx - 0.02, cv, 0.1, 0.17, skin * 0.9)  # ears
    pen.ellipse(rx + 0.02, cv, 0.1, 0.17, skin * 0.9)
    pen.ellipse(0, cv, rx, ry, skin)
    pen.chord(0, cv + 0.04, rx * 1.02, ry * 0.98, 180, 360, hair)  # hair cap
    pen.ellipse(0, cv + ry * 0.2, rx * 0.92, ry * 0.35, skin)  # forehead below the hairline
    ey, ex = cv + _pick(rng, 0.0, 0.12), _pick(rng, 0.2, 0.3)
    for s in (-1, 1):
        pen.line([(s * ex - 0.13, ey + 0.15), (s * ex + 0.13, ey + 0.17 + 0.04 * s)], 0.05, hair * 0.7)  # brows
        pen.ellipse(s * ex, ey, 0.12, 0.065, 0.95)  # eye white
        pen.ellipse(s * ex, ey, 0.06, 0.06, 0.08)  # iris
    pen.poly([(0, ey - 0.02), (-0.08, ey - 0.3), (0.08, ey - 0.3)], skin * 0.78)  # nose
    mw = _pick(rng, 0.16, 0.26)
    pen.chord(0, ey - 0.44, mw, 0.1, 0, 180, 0.25)  # mouth
    if k in (2, 6):  # beard
        pen.chord(0, cv - 0.1, rx * 0.95, ry * 0.85, 20, 160, hair)
        pen.chord(0, ey - 0.44, mw, 0.08, 0, 180, 0.2)
    if k == 4:  # glasses
        for s in (-1, 1):
            pen.line(
                [
                    (s * ex - 0.15, ey),
                    (s * ex - 0.1, ey + 0.1),
                    (s * ex + 0.1, ey + 0.1),
                    (s * ex + 0.15, ey),
                    (s * ex + 0.1, ey - 0.1),
                    (s * ex - 0.1, ey - 0.1),
                    (s * ex - 0.15, ey),
                ],
                0.03,
                0.1,
            )


def draw_car(pen: Pen, rng: np.random.Generator, k: int) -> None:
    body = _pick(rng, 0.35, 0.9)
    length = _pick(rng, 0.85, 0.98)
    bot, top = -0.3, _pick(rng, 0.0, 0.12)
    cab_h = _pick(rng, 0.28, 0.4)
    if k == 1:  # beetle: round cabin
        pen.chord(-0.05, top, 0.62, 0.55, 180, 360, body)
        pen.chord(-0.05, top + 0.04, 0.5, 0.4, 180, 360, 0.15)
        pen.rect(-0.08, top, -0.02, top + 0.45, body)  # door pillar
    else:
        rear = -length + _pick(rng, 0.2, 0.45) if k % 2 == 0 else -length + 0.15
        front = _pick(rng, 0.25, 0.45)
        pen.poly([(rear, top), (rear + 0.15, top + cab_h), (front - 0.2, top + cab_h), (front + 0.15, top)], body)
        mid = (rear + front) / 2
        pen.poly(
            [
                (rear + 0.1, top + 0.02),
                (rear + 0.2, top + cab_h - 0.05),
                (mid - 0.03, top + cab_h - 0.05),
                (mid - 0.03, top + 0.02),
            ],
            0.12,
        )
        pen.poly(
            [
                (mid + 0.03, top + 0.02),
                (mid + 0.03, top + cab_h - 0.05),
                (front - 0.22, top + cab_h - 0.05),
                (front + 0.07, top + 0.02),
            ],
            0.12,
        )
    pen.rrect(-length, bot, length, top + 0.02, 0.1, body)
    pen.line([(-length + 0.05, (bot + top) / 2), (length - 0.05, (bot + top) / 2)], 0.015, body * 0.7)
    pen.rect(length - 0.08, top - 0.12, length, top - 0.03, 0.97)  # headlight
    pen.rect(-length, top - 0.12, -length + 0.06, top - 0.03, 0.4)  # tail light
    wr = _pick(rng, 0.16, 0.22)
    for wu in (-length + 0.35, length - 0.35):
        pen.ellipse(wu, bot, wr, wr, 0.06)
        pen.ellipse(wu, bot, wr * 0.5, wr * 0.5, 0.65)
        pen.ellipse(wu, bot, wr * 0.15, wr * 0.15, 0.3)


def draw_chair(pen: Pen, rng: np.random.Generator, k: int) -> None:
    wood = _pick(rng, 0.25, 0.8)
    seat_v = _pick(rng, -0.2, 0.0)
    w = _pick(rng, 0.38, 0.5)
    d = _pick(rng, 0.15, 0.25)  # depth offset of the back legs (3/4 view)
    leg = 0.05 if k % 2 else 0.08
    back_top = _pick(rng, 0.75, 0.95)
    # back legs (behind), then back, seat, front legs
    for u in (-w + d, w + d):
        pen.rect(u - leg / 2, -0.9 + d * 0.6, u + leg / 2, seat_v, wood * 0.7)
    if k in (0, 3, 6):  # slatted back
        pen.rect(-w + d - leg / 2, seat_v, -w + d + leg / 2, back_top, wood * 0.8)
        pen.rect(w + d - leg / 2, seat_v, w + d + leg / 2, back_top, wood * 0.8)
        pen.rect(-w + d, back_top - 0.12, w + d, back_top, wood * 0.9)
        for i in range(1, 4):
            u = -w + d + i * 2 * w / 4
            pen.rect(u - 0.025, seat_v, u + 0.025, back_top, wood * 0.85)
    else:  # solid back panel, rounded for some
        pen.rrect(-w + d - leg / 2, seat_v, w + d + leg / 2, back_top, 0.08 if k % 3 else 0.2, wood * 0.85)
    pen.poly([(-w, seat_v), (w, seat_v), (w + d, seat_v + d * 0.6), (-w + d, seat_v + d * 0.6)], min(wood * 1.2, 1))
    pen.rect(-w, seat_v - 0.08, w, seat_v, wood * 0.75)
    for u in (-w + leg / 2, w - leg / 2):
        pen.rect(u - leg / 2, -0.95, u + leg / 2, seat_v, wood)
    if k in (2, 7):  # armrests
        for u in (-w, w):
            pen.rect(u - 0.03, seat_v, u + 0.03, seat_v + 0.35, wood * 0.9)
            pen.line([(u - 0.05, seat_v + 0.35), (u + d, seat_v + 0.35 + d * 0.6)], 0.06, wood * 0.9)


def draw_table(pen: Pen, rng: np.random.Generator, k: int) -> None:
    wood = _pick(rng, 0.3, 0.85)
    w = _pick(rng, 0.8, 0.97)
    top_v = _pick(rng, 0.05, 0.3)
    d = _pick(rng, 0.2, 0.32)
    if k in (1, 5):  # round pedestal table
        pen.rect(-0.07, -0.8, 0.07, top_v, wood * 0.7)
        pen.ellipse(0, -0.82, 0.45, 0.1, wood * 0.6)
        pen.ellipse(0, top_v, w, d * 0.7, min(1.0, wood * 1.15))
        pen.chord(0, top_v - 0.03, w, d * 0.7, 0, 180, wood * 0.8)
        pen.ellipse(0, top_v + 0.02, w * 0.97, d * 0.62, min(1.0, wood * 1.15))
        return
    leg = _pick(rng, 0.05, 0.09)
    foot = -0.85
    for u in (-w + d + 0.08, w + d - 0.08):  # back legs
        pen.rect(u - leg / 2, foot + d * 0.5, u + leg / 2, top_v, wood * 0.6)
    pen.poly([(-w, top_v), (w, top_v), (w + d, top_v + d), (-w + d, top_v + d)], min(1.0, wood * 1.2))
    pen.rect(-w, top_v - 0.07, w, top_v, wood * 0.75)
    if k in (2, 6):  # apron / drawer
        pen.rect(-w + 0.05, top_v - 0.2, w - 0.05, top_v - 0.07, wood * 0.85)
        pen.rect(-0.12, top_v - 0.15, 0.12, top_v - 0.12, 0.2)
    for u in (-w + 0.08, w - 0.08):
        pen.rect(u - leg / 2, foot, u + leg / 2, top_v - 0.07, wood)
    if k in (3, 7):  # lower shelf
        pen.rect(-w + 0.08, foot + 0.2, w - 0.08, foot + 0.27, wood * 0.8)


def draw_plane(pen: Pen, rng: np.random.Generator, k: int) -> None:
    """Top view: fuselage along u, nose right, wings up and down."""
    metal = _pick(rng, 0.55, 0.92)
    fl = 0.97
    fw = _pick(rng, 0.07, 0.11)
    sweep = _pick(rng, 0.1, 0.45)
    span = _pick(rng, 0.75, 0.95)
    root_u = _pick(rng, -0.1, 0.15)
    chord = _pick(rng, 0.22, 0.35)
    if k in (3, 6):  # delta wing
        pen.poly([(root_u + 0.35, fw), (-0.55, span), (-0.7, span), (-0.75, fw)], metal * 0.85)
        pen.poly([(root_u + 0.35, -fw), (-0.55, -span), (-0.7, -span), (-0.75, -fw)], metal * 0.85)
    else:
        for s in (1, -1):
            pen.poly(
                [
                    (root_u + chord / 2, s * fw),
                    (root_u - sweep + 0.08, s * span),
                    (root_u - sweep - 0.06, s * span),
                    (root_u - chord / 2, s * fw),
                ],
                metal * 0.85,
            )
            if k in (0, 2, 5):  # engines under the wings
                eu = root_u - sweep * 0.45
                pen.ellipse(eu + 0.02, s * span * 0.45, 0.12, 0.045, 0.35)
    ts = _pick(rng, 0.25, 0.35)
    for s in (1, -1):  # tail plane
        pen.poly([(-fl + 0.22, s * fw), (-fl + 0.05, s * ts), (-fl, s * ts), (-fl + 0.05, s * fw)], metal * 0.8)
    pen.ellipse(0, 0, fl, fw, metal)
    pen.ellipse(fl - 0.12, 0, 0.07, fw * 0.6, 0.12)  # cockpit
    pen.line([(-fl + 0.1, 0), (fl - 0.25, 0)], 0.012, metal * 0.75)


def draw_boat(pen: Pen, rng: np.random.Generator, k: int) -> None:
    hull = _pick(rng, 0.1, 0.5)
    length = _pick(rng, 0.88, 0.98)
    deck = _pick(rng, -0.35, -0.15)
    keel = deck - _pick(rng, 0.22, 0.35)
    bow = length + _pick(rng, 0.0, 0.05)
    pen.poly([(-length, deck), (bow, deck + 0.08), (length - 0.25, keel), (-length + 0.1, keel)], hull)
    pen.rect(-length, deck - 0.05, bow - 0.03, deck, min(1.0, hull + 0.4))  # gunwale stripe
    if k in (0, 3, 5):  # sailing boat: mast and two sails
        mu = _pick(rng, -0.2, 0.1)
        mh = _pick(rng, 0.8, 0.95)
        pen.rect(mu - 0.02, deck, mu + 0.02, mh, 0.2)
        pen.poly([(mu - 0.04, deck + 0.08), (mu - 0.04, mh - 0.05), (mu - _pick(rng, 0.5, 0.7), deck + 0.08)], 0.95)
        pen.poly([(mu + 0.04, deck + 0.12), (mu + 0.04, mh - 0.1), (mu + _pick(rng, 0.4, 0.6), deck + 0.12)], 0.88)
    else:  # motor ship: superstructure, windows, funnel(s)
        light = _pick(rng, 0.75, 0.95)
        c0, c1 = -length * 0.55, length * _pick(rng, 0.2, 0.45)
        h1 = _pick(rng, 0.18, 0.28)
        pen.rect(c0, deck, c1, deck + h1, light)
        pen.rect(c0 + 0.1, deck + h1, c1 - 0.15, deck + h1 + 0.16, light * 0.92)
        for i in range(int((c1 - c0) / 0.12)):
            u = c0 + 0.06 + i * 0.12
            pen.rect(u, deck + h1 * 0.45, u + 0.05, deck + h1 * 0.75, 0.15)
        nf = 1 + (k % 2)
        for j in range(nf):
            fu = c0 + 0.2 + j * 0.28
            pen.poly(
                [
                    (fu, deck + h1 + 0.16),
                    (fu + 0.14, deck + h1 + 0.16),
                    (fu + 0.18, deck + h1 + 0.45),
                    (fu + 0.04, deck + h1 + 0.45),
                ],
                _pick(rng, 0.1, 0.4),
            )
        pen.line([(c1 - 0.2, deck + h1 + 0.16), (c1 - 0.2, deck + h1 + 0.5)], 0.015, 0.2)


def draw_fruit(pen: Pen, rng: np.random.Generator, name: str) -> None:
    tone = _pick(rng, 0.45, 0.8)
    if name == "watermelon":
        pen.ellipse(0, 0, 0.95, 0.68, 0.3)
        for i in range(-3, 4):
            if i:
                top = 0.62 - 0.08 * abs(i)
                pen.line([(i * 0.25, top), (i * 0.3, 0), (i * 0.25, -top)], 0.06, 0.15)
        return
    if name == "pear":
        pen.ellipse(0, -0.35, 0.55, 0.55, tone)
        pen.ellipse(0, 0.22, 0.33, 0.42, tone)
        pen.line([(0, 0.6), (0.08, 0.9)], 0.05, 0.2)
        return
    if name == "strawberry":
        pen.poly([(-0.65, 0.45), (0.65, 0.45), (0.35, -0.4), (0, -0.8), (-0.35, -0.4)], tone * 0.7)
        pen.ellipse(0, 0.35, 0.67, 0.3, tone * 0.7)
        for _ in range(18):
            su, sv = _pick(rng, -0.45, 0.45), _pick(rng, -0.4, 0.4)
            if abs(su) < 0.55 * (sv + 0.8) / 1.2:
                pen.ellipse(su, sv, 0.025, 0.04, 0.95)
        for a in range(5):  # leafy crown
            ang = math.pi * (0.15 + 0.7 * a / 4)
            pen.poly(
                [
                    (0, 0.55),
                    (0.5 * math.cos(ang) - 0.05, 0.55 + 0.3 * math.sin(ang)),
                    (0.5 * math.cos(ang) + 0.05, 0.55 + 0.3 * math.sin(ang)),
                ],
                0.25,
            )
        return
    if name == "raspberry":
        for i in range(5):
            for j in range(4 - abs(i - 2) // 2):
                pen.ellipse(-0.44 + i * 0.22, -0.5 + j * 0.3 + 0.05 * (i % 2), 0.14, 0.14, tone * _pick(rng, 0.6, 0.8))
                pen.ellipse(-0.47 + i * 0.22, -0.47 + j * 0.3 + 0.05 * (i % 2), 0.05, 0.05, min(1.0, tone * 1.25))
        pen.ellipse(0, 0.55, 0.3, 0.08, 0.2)
        return
    if name == "walnut":
        pen.ellipse(0, 0, 0.7, 0.82, tone * 0.8)
        pen.line([(0, 0.82), (0, -0.82)], 0.04, tone * 0.4)
        for _ in range(14):
            u0, v0 = _pick(rng, -0.55, 0.55), _pick(rng, -0.6, 0.6)
            pen.line([(u0, v0), (u0 + _pick(rng, -0.2, 0.2), v0 + _pick(rng, -0.15, 0.15))], 0.03, tone * 0.45)
        return
    r = {"apricot": 0.62, "peach": 0.78, "apple": 0.8}.get(name, 0.7)
    pen.ellipse(0, -0.05, r, r * 0.95, tone)
    if name == "apple":
        pen.chord(0, r * 0.85, 0.25, 0.15, 0, 180, tone * 0.7)
        pen.line([(0, r * 0.8), (0.06, r + 0.25)], 0.05, 0.15)
        pen.poly([(0.06, r + 0.1), (0.4, r + 0.3), (0.2, r + 0.05)], 0.3)
    else:  # apricot, peach: the crease
        pen.line([(0.05, r * 0.9), (-0.1, 0), (0.05, -r * 0.85)], 0.03, tone * 0.65)
        pen.line([(0, r * 0.9), (0.03, r + 0.12)], 0.04, 0.2)


def _draw_turtle(pen: Pen, fur: float) -> None:
    for u in (-0.45, -0.1, 0.25, 0.5):
        pen.rrect(u - 0.08, -0.45, u + 0.08, -0.15, 0.05, fur * 0.8)
    pen.ellipse(0.78, -0.1, 0.2, 0.13, fur * 0.8)
    pen.chord(0, -0.2, 0.72, 0.6, 180, 360, fur * 0.6)
    for i in range(-2, 3):
        pen.ellipse(i * 0.25, 0.1 - 0.04 * abs(i), 0.11, 0.1, fur * 0.9)


def _draw_hedgehog(pen: Pen, fur: float) -> None:
    for i in range(21):
        ang = math.pi * (0.08 + 0.84 * i / 20)
        bu, bv = 0.62 * math.cos(ang) - 0.1, 0.42 * math.sin(ang) - 0.25
        pen.poly([(bu - 0.06, bv), (bu + 0.06, bv), (bu * 1.3, bv * 1.15 + 0.25)], fur * 0.45)
    pen.chord(-0.1, -0.25, 0.7, 0.5, 180, 360, fur * 0.7)
    pen.poly([(0.45, -0.25), (0.5, 0.05), (0.92, -0.2)], fur * 1.1)
    pen.ellipse(0.88, -0.2, 0.04, 0.04, 0.05)
    for u in (-0.5, -0.2, 0.1, 0.35):
        pen.rect(u - 0.04, -0.4, u + 0.04, -0.22, fur)


def _draw_gorilla(pen: Pen, fur: float) -> None:
    fur = fur * 0.4
    pen.ellipse(0, 0.05, 0.45, 0.55, fur)  # torso
    pen.ellipse(0.1, 0.65, 0.22, 0.22, fur)  # head
    pen.ellipse(0.2, 0.6, 0.12, 0.1, fur * 2.2)  # face
    pen.line([(-0.3, 0.35), (-0.55, -0.2), (-0.5, -0.85)], 0.16, fur * 1.2)  # arms
    pen.line([(0.3, 0.35), (0.55, -0.2), (0.5, -0.85)], 0.16, fur * 1.2)
    pen.rect(-0.3, -0.9, -0.1, -0.35, fur)
    pen.rect(0.1, -0.9, 0.3, -0.35, fur)


def _draw_quadruped_body(pen: Pen, name: str, fur: float) -> tuple[float, float, float, float]:
    """Legs, tail and body of a quadruped; returns the body's centre (u, v) and half-length, half-height."""
    body_l = {"elephant": 0.62, "cow": 0.6, "bear": 0.55, "dog": 0.5, "lioness": 0.58}.get(name, 0.55)
    body_h = {"elephant": 0.38, "cow": 0.3, "bear": 0.33, "dog": 0.2, "lioness": 0.2}.get(name, 0.25)
    leg_w = {"elephant": 0.14, "bear": 0.12}.get(name, 0.07)
    leg_len = {"elephant": 0.45, "cow": 0.45, "bear": 0.35, "dog": 0.45, "lioness": 0.5}.get(name, 0.4)
    cu, cv = -0.1, -0.45 + leg_len + body_h * 0.6
    foot = cv - body_h * 0.6 - leg_len
    for du in (-body_l + 0.15, -body_l + 0.3, body_l - 0.25, body_l - 0.1):  # legs
        pen.rect(
            cu + du - leg_w / 2,
            foot,
            cu + du + leg_w / 2,
            cv,
            fur * (0.8 if du in (-body_l + 0.3, body_l - 0.1) else 1.0),
        )
    tail = {
        "lioness": [(cu - body_l, cv + 0.05), (cu - body_l - 0.25, cv - 0.2), (cu - body_l - 0.3, cv - 0.45)],
        "dog": [(cu - body_l, cv + 0.1), (cu - body_l - 0.2, cv + 0.35)],
        "cow": [(cu - body_l, cv + 0.1), (cu - body_l - 0.06, cv - 0.4)],
    }.get(name)
    if tail:
        pen.line(tail, 0.04, fur * 0.8)
        if name == "lioness":
            pen.ellipse(tail[-1][0], tail[-1][1], 0.06, 0.08, fur * 0.4)
    pen.ellipse(cu, cv, body_l, body_h, fur)
    return cu, cv, body_l, body_h


def _draw_elephant_head(pen: Pen, hu: float, hv: float, fur: float) -> None:
    pen.ellipse(hu, hv, 0.25, 0.26, fur)
    pen.line([(hu + 0.2, hv - 0.05), (hu + 0.3, hv - 0.4), (hu + 0.25, hv - 0.7)], 0.1, fur * 0.95)  # trunk
    pen.ellipse(hu - 0.12, hv, 0.15, 0.24, fur * 0.8)  # ear
    pen.line([(hu + 0.12, hv - 0.15), (hu + 0.3, hv - 0.22)], 0.03, 0.95)  # tusk


def _draw_quadruped_head(
    pen: Pen, rng: np.random.Generator, name: str, fur: float, body: tuple[float, float, float, float]
) -> None:
    """Head, snout, nose, eye and ears (or horns and patches, for a cow) on the body `_draw_quadruped_body` drew."""
    cu, cv, body_l, body_h = body
    hu, hv = cu + body_l + 0.05, cv + body_h * 0.55
    if name == "elephant":
        _draw_elephant_head(pen, hu, hv, fur)
        return
    hr = {"bear": 0.19, "cow": 0.16, "dog": 0.14, "lioness": 0.15}.get(name, 0.15)
    pen.ellipse(hu, hv, hr, hr * 0.95, fur)
    snout = {"cow": 0.18, "dog": 0.17, "bear": 0.14, "lioness": 0.12}.get(name, 0.14)
    pen.rrect(hu, hv - hr * 0.7, hu + hr + snout * 0.7, hv + hr * 0.1, 0.05, fur * 1.1)
    pen.ellipse(hu + hr + snout * 0.65, hv - hr * 0.2, 0.03, 0.03, 0.05)  # nose
    pen.ellipse(hu + hr * 0.3, hv + hr * 0.35, 0.03, 0.03, 0.05)  # eye
    if name == "cow":
        pen.line([(hu - 0.05, hv + hr * 0.8), (hu - 0.12, hv + hr * 1.6)], 0.03, 0.9)  # horns
        pen.line([(hu + 0.05, hv + hr * 0.8), (hu + 0.1, hv + hr * 1.6)], 0.03, 0.9)
        for _ in range(4):  # patches
            pen.ellipse(
                cu + _pick(rng, -0.4, 0.4),
                cv + _pick(rng, -0.1, 0.1),
                _pick(rng, 0.08, 0.15),
                _pick(rng, 0.06, 0.12),
                min(1.0, fur + 0.45),
            )
    elif name == "dog":
        pen.poly([(hu - 0.05, hv + hr * 0.6), (hu - 0.15, hv - hr * 0.6), (hu + 0.02, hv + hr * 0.2)], fur * 0.6)
    else:  # bear, lioness: small round ears
        pen.ellipse(hu - hr * 0.4, hv + hr * 0.85, 0.05, 0.05, fur * 0.8)


_SPECIAL_ANIMALS: dict[str, Callable[[Pen, float], None]] = {
    "turtle": _draw_turtle,
    "hedgehog": _draw_hedgehog,
    "gorilla": _draw_gorilla,
}


def draw_animal(pen: Pen, rng: np.random.Generator, name: str) -> None:
    """Side view, facing right."""
    fur = _pick(rng, 0.25, 0.7)
    special = _SPECIAL_ANIMALS.get(name)
    if special is not None:
        special(pen, fur)
        return
    _draw_quadruped_head(pen, rng, name, fur, _draw_quadruped_body(pen, name, fur))


DRAWERS: dict[str, Callable[[Pen, np.random.Generator, object], None]] = {
    "Faces": draw_face,
    "Cars": draw_car,
    "Chairs": draw_chair,
    "Tables": draw_table,
    "Planes": draw_plane,
    "Boats": draw_boat,
    "Fruits": draw_fruit,
    "Animals": draw_animal,
}
