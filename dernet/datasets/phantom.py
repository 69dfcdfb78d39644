"""Spine-like radiograph phantoms with lesions of the seven VinDr-SpineXR classes.

A lateral-view column of vertebral bodies (cortical rim, trabecular texture) separated by disc spaces, a
posterior column with one intervertebral foramen per disc, on a soft-tissue background with exposure
variation and noise. Each lesion is a local change of the attenuation map with a distinct pattern:

- Osteophytes: a bony spur growing out of an anterior corner of a body.
- Surgical implant: two threaded pedicle screws through one body.
- Spondylolysthesis: one body slipped forward over the one below.
- Foraminal stenosis: sclerotic bone growing into a foramen, leaving a slit.
- Disc space narrowing: the endplates of a disc grown into it, sclerotic, leaving a thin gap.
- Vertebral collapse: a wedge-flattened, denser body.
- Other lesions: a round lytic focus with a sclerotic rim inside a body.

Each lesion's box is the bounding box of the pixels it changed, so it encloses exactly what was drawn.
Lesion contrast stays within the anatomy's own (cortex-like); nothing saturates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

__all__ = ["LesionSpec", "PhantomSpec", "render_phantom", "sample_spec"]

BODY_CLASSES = {2, 5}  # lesions that reshape a whole vertebral body: one per body


@dataclass(frozen=True)
class LesionSpec:
    class_id: int
    level: int  # vertebral body index (for disc/foramen lesions: the disc below this body)
    variant: float  # 0..1, picks size/side details deterministically


@dataclass(frozen=True)
class Body:
    cx: float
    cy: float
    half_w: float
    half_h: float
    tilt: float = 0.0  # radians
    wedge: float = 0.0  # 0..1: anterior height loss
    density: float = 0.0  # extra trabecular attenuation


@dataclass(frozen=True)
class PhantomSpec:
    """Everything needed to draw one phantom deterministically."""

    seed: int
    width: int
    height: int
    bodies: tuple[Body, ...]
    lesions: tuple[LesionSpec, ...] = ()
    gain: float = 1.0
    gamma: float = 1.0
    offset: float = 0.0
    noise: float = 0.01
    extras: dict = field(default_factory=dict, compare=False)


def sample_spec(seed: int, long_side: int, lesion_classes: list[int]) -> PhantomSpec:
    """Random anatomy and exposure for one image; ``lesion_classes`` says which lesions to place."""
    rng = np.random.default_rng(seed)
    height = long_side
    width = int(round(long_side * rng.uniform(0.68, 0.82)))
    n_bodies = int(rng.integers(5, 7))
    top, bottom = height * rng.uniform(0.05, 0.09), height * rng.uniform(0.91, 0.95)
    pitch = (bottom - top) / n_bodies
    half_w = width * rng.uniform(0.1, 0.115)
    axis = width * rng.uniform(0.42, 0.5)
    curve, phase = width * rng.uniform(0.01, 0.04), rng.uniform(0, np.pi)
    bodies = []
    for k in range(n_bodies):
        cy = top + pitch * (k + 0.5)
        cx = axis + curve * np.sin(np.pi * cy / height + phase)
        bodies.append(
            Body(
                cx,
                cy,
                half_w * rng.uniform(0.95, 1.05),
                pitch * rng.uniform(0.34, 0.37),
                tilt=rng.uniform(-0.06, 0.06),
            )
        )
    lesions = _place_lesions(rng, lesion_classes, n_bodies)
    return PhantomSpec(
        seed=seed,
        width=width,
        height=height,
        bodies=tuple(bodies),
        lesions=lesions,
        gain=rng.uniform(0.8, 0.98),
        gamma=rng.uniform(0.8, 1.25),
        offset=rng.uniform(-0.04, 0.02),
        noise=rng.uniform(0.006, 0.014),
    )


def _place_lesions(rng: np.random.Generator, classes: list[int], n_bodies: int) -> tuple[LesionSpec, ...]:
    used: set[tuple[str, int]] = set()
    placed = []
    for class_id in classes:
        site = "disc" if class_id in (3, 4) else "body"
        levels = range(1, n_bodies - 1) if class_id == 2 else range(n_bodies - (site == "disc"))
        free = [lv for lv in levels if (site, lv) not in used]
        if not free:
            continue
        level = int(rng.choice(free))
        used.add((site, level))
        placed.append(LesionSpec(class_id, level, float(rng.uniform())))
    return tuple(placed)


def render_phantom(spec: PhantomSpec, with_lesions: bool = True) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """The phantom as float32 in [0, 1] (bone bright) and its lesion boxes [(class_id, [x1, y1, x2, y2])].

    Lesions are applied one at a time; each box bounds the pixels that lesion changed.
    """
    rng = np.random.default_rng([spec.seed, 1])
    yy, xx = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float32)
    texture = _smooth_noise(rng, (spec.height, spec.width), sigma=1.6, std=0.035)
    background = _soft_tissue(rng, spec, xx)
    noise = rng.normal(0.0, 1.0, (spec.height, spec.width)).astype(np.float32)

    anatomy = _Anatomy(spec, xx, yy, texture)
    attenuation = anatomy.draw()
    boxes: list[tuple[int, list[float]]] = []
    if with_lesions:
        for lesion in spec.lesions:
            changed = anatomy.apply(lesion)
            delta = changed - attenuation
            ys, xs = np.nonzero(delta)
            if len(xs):
                boxes.append(
                    (
                        lesion.class_id,
                        [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
                    )
                )
            attenuation = changed
    image = spec.offset + spec.gain * np.power(background + attenuation, spec.gamma) + spec.noise * noise
    return np.clip(image, 0.0, 1.0).astype(np.float32), boxes


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float, std: float) -> np.ndarray:
    field_ = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), sigma)
    return field_ * (std / max(float(field_.std()), 1e-6))


def _soft_tissue(rng: np.random.Generator, spec: PhantomSpec, xx: np.ndarray) -> np.ndarray:
    centre = spec.width * rng.uniform(0.4, 0.55)
    body = 0.14 * np.exp(-(((xx - centre) / (0.38 * spec.width)) ** 2))
    slow = _smooth_noise(rng, (spec.height, spec.width), sigma=spec.width / 12, std=0.015)
    return (0.16 + body + slow).astype(np.float32)


class _Anatomy:
    """Bone layers of one phantom; lesions edit a copy of the layer parameters and redraw."""

    CORTEX, TRABECULAR, POSTERIOR, METAL, MAX_BONE, SCLEROSIS = 0.17, 0.2, 0.11, 0.3, 0.6, 0.08

    def __init__(self, spec: PhantomSpec, xx: np.ndarray, yy: np.ndarray, texture: np.ndarray) -> None:
        self.spec, self.xx, self.yy, self.texture = spec, xx, yy, texture
        self.bodies = list(spec.bodies)
        self.extra = np.zeros_like(xx)  # added lesion layers (spurs, screws, sclerosis, lytic foci)
        self.foramen_fill = [0.0] * (len(self.bodies) - 1)

    def draw(self) -> np.ndarray:
        bone = self._posterior_column() + self.extra
        for body in self.bodies:
            window = self._window(body, 1.05)
            bone[window] += self._body(body, window)
        return np.minimum(bone, self.MAX_BONE).astype(np.float32)  # overlapping layers never saturate

    def apply(self, lesion: LesionSpec) -> np.ndarray:
        body, v = self.bodies[lesion.level], lesion.variant
        if lesion.class_id == 0:
            self.extra += self._spur(body, v)
        elif lesion.class_id == 1:
            self.extra += self._screws(body, v)
        elif lesion.class_id == 2:
            self.bodies[lesion.level] = replace(body, cx=body.cx - body.half_w * (0.45 + 0.25 * v))
        elif lesion.class_id == 3:
            self.foramen_fill[lesion.level] = 0.8 + 0.15 * v
        elif lesion.class_id == 4:
            self.extra += self._narrowing(lesion.level, v)
        elif lesion.class_id == 5:
            loss = 0.3 + 0.15 * v
            self.bodies[lesion.level] = replace(
                body,
                cy=body.cy + body.half_h * loss * 0.5,
                half_h=body.half_h * (1 - loss * 0.5),
                wedge=0.35 + 0.2 * v,
                density=0.06,
            )
        elif lesion.class_id == 6:
            self.extra += self._lytic_focus(body, v)
        return self.draw()

    def _window(self, body: Body, reach: float) -> tuple[slice, slice]:
        """The rows and columns that hold every point of ``body`` within ``reach`` of its half sizes (|u|, |v| <=
        reach in its own frame; a wedge only shrinks it): drawing there only is what makes rendering quick."""
        s = abs(np.sin(body.tilt))
        rx = reach * (body.half_w + body.half_h * s) + 2
        ry = reach * (body.half_h + body.half_w * s) + 2
        height, width = self.xx.shape
        rows = slice(max(int(body.cy - ry), 0), min(int(np.ceil(body.cy + ry)) + 1, height))
        columns = slice(max(int(body.cx - rx), 0), min(int(np.ceil(body.cx + rx)) + 1, width))
        return rows, columns

    def _local(self, body: Body, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """The body's own coordinates (u across, v along the column; the body is |u|, |v| < 1) over ``window``."""
        c, s = np.cos(body.tilt), np.sin(body.tilt)
        dx, dy = self.xx[window] - body.cx, self.yy[window] - body.cy
        u, v = (c * dx + s * dy) / body.half_w, (-s * dx + c * dy) / body.half_h
        if body.wedge:  # anterior side (u < 0) lower: the top endplate comes down towards the front
            v = (v + 1) / (1 - body.wedge * np.clip((1 - u) / 2, 0, 1)) - 1
        return u, v

    def _body(self, body: Body, window: tuple[slice, slice]) -> np.ndarray:
        u, v = self._local(body, window)
        r = (np.abs(u) ** 5 + np.abs(v) ** 5) ** 0.2
        sharp = min(body.half_w, body.half_h) / 1.2
        inside = np.clip((1 - r) * sharp, 0, 1)
        rim = np.clip((r - 1 + 3.5 / min(body.half_w, body.half_h)) * sharp, 0, 1) * inside
        value = inside * (self.TRABECULAR + body.density + self.texture[window]) + rim * self.CORTEX
        return np.where(r < 1.05, value, 0.0).astype(np.float32)

    def _posterior_column(self) -> np.ndarray:
        """Pedicles and facets as one band behind the bodies, with a foramen behind each disc."""
        band = np.zeros(self.xx.shape, bool)
        holes = np.zeros(self.xx.shape, bool)
        grown = np.zeros(self.xx.shape, bool)  # bone grown into a foramen (stenosis)
        bodies = self.spec.bodies  # the column stays put when a body slips or collapses
        for upper, lower, fill in zip(bodies[:-1], bodies[1:], self.foramen_fill, strict=True):
            x0 = (upper.cx + lower.cx) / 2 + (upper.half_w + lower.half_w) / 2 + 0.12 * upper.half_w
            band |= (
                (self.xx >= x0)
                & (self.xx < x0 + 1.1 * upper.half_w)
                & ((self.yy >= upper.cy - upper.half_h) & (self.yy < lower.cy + lower.half_h))
            )
            fx, fy = x0 + 0.45 * upper.half_w, (upper.cy + upper.half_h + lower.cy - lower.half_h) / 2
            rx, ry = 0.24 * upper.half_w, 0.3 * (lower.cy - upper.cy)
            hole = ((self.xx - fx) / rx) ** 2 + ((self.yy - fy) / ry) ** 2 < 1
            if fill:  # stenosis: sclerotic bone from the bottom of the foramen leaves a slit at the top
                slit = hole & (self.yy < fy + ry - 2 * ry * fill)
                grown |= hole & ~slit
                hole = slit
            holes |= hole
        bone = np.where(band & ~holes, self.POSTERIOR + 0.5 * self.texture, 0.0)
        return (bone + np.where(grown, self.SCLEROSIS, 0.0)).astype(np.float32)

    def _polygon(self, points: np.ndarray) -> np.ndarray:
        """Anti-aliased filled polygon as a 0..1 mask (4x sub-pixel precision)."""
        mask = np.zeros(self.xx.shape, np.uint8)
        cv2.fillPoly(mask, [np.round(points * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
        return mask.astype(np.float32) / 255.0

    def _spur(self, body: Body, v: float) -> np.ndarray:
        top = v < 0.5
        corner_y = body.cy + (-1 if top else 1) * body.half_h * 0.92
        corner_x = body.cx - body.half_w * 0.97
        length, base = body.half_w * (0.7 + 0.3 * v), body.half_h * 0.7
        tip = (corner_x - length, corner_y + (-1 if top else 1) * base * 0.35)
        inner = corner_y - (-1 if top else 1) * base
        points = np.array([[corner_x + 3, inner], [corner_x + 3, corner_y], tip], np.float32)
        return self._polygon(points) * self.CORTEX * 1.3

    def _screws(self, body: Body, v: float) -> np.ndarray:
        layer = np.zeros_like(self.xx)
        angle = -0.15 + 0.3 * v
        for offset in (-0.45, 0.45):
            start = np.array([body.cx + body.half_w * 1.25, body.cy + offset * body.half_h])
            direction = np.array([-np.cos(angle), np.sin(angle)])
            normal = np.array([-direction[1], direction[0]])
            end = start + direction * body.half_w * 1.35
            half = 2.2
            shaft = np.array([start + normal * half, end + normal * half, end - normal * half, start - normal * half])
            s = (self.xx - start[0]) * direction[0] + (self.yy - start[1]) * direction[1]
            threads = 0.8 + 0.2 * np.sin(2 * np.pi * s / 4.0)
            head = np.array(
                [
                    start + normal * 5 - direction * 6,
                    start + normal * 5,
                    start - normal * 5,
                    start - normal * 5 - direction * 6,
                ]
            )
            layer = np.maximum(layer, self._polygon(shaft) * threads * self.METAL)
            layer = np.maximum(layer, self._polygon(head) * self.METAL)
        return layer

    def _narrowing(self, level: int, v: float) -> np.ndarray:
        upper, lower = self.bodies[level], self.bodies[level + 1]
        gap_top, gap_bottom = upper.cy + upper.half_h * 0.97, lower.cy - lower.half_h * 0.97
        keep = 0.25 + 0.1 * v
        grow = (gap_bottom - gap_top) * (1 - keep) / 2
        half_w = min(upper.half_w, lower.half_w) * 0.93
        cx = (upper.cx + lower.cx) / 2
        slab_a = np.array(
            [
                [cx - half_w, gap_top],
                [cx + half_w, gap_top],
                [cx + half_w, gap_top + grow],
                [cx - half_w, gap_top + grow],
            ],
            np.float32,
        )
        slab_b = slab_a + np.array([0, gap_bottom - gap_top - grow], np.float32)
        return (self._polygon(slab_a) + self._polygon(slab_b)) * (self.TRABECULAR + self.CORTEX * 0.5 + self.texture)

    def _lytic_focus(self, body: Body, v: float) -> np.ndarray:
        window = self._window(body, 1.5)
        u, w = self._local(body, window)
        cu, cw = -0.35 + 0.7 * v, 0.25 - 0.5 * v
        radius = 0.35 + 0.12 * v
        d = np.sqrt(((u - cu) * body.half_w) ** 2 + ((w - cw) * body.half_w) ** 2) / (radius * body.half_w)
        hole = -0.16 * np.clip((1 - d) * radius * body.half_w / 1.5, 0, 1)
        ring = 0.12 * np.clip(1 - np.abs(d - 1.08) * radius * body.half_w / 2.5, 0, 1)
        layer = np.zeros_like(self.xx)
        layer[window] = np.where(d < 1.4, hole + ring, 0.0)
        return layer
