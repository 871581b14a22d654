"""Built-in offline `digits`: MNIST-like handwritten digits 0-9, white on black, rendered procedurally.

Each class has one to three hand-made stroke templates (style variants: 1 plain / with flag / with
flag and base, 2 with or without a bottom loop, 3 round or flat-topped, 4 closed or open, 7 with or
without a cross bar or hook, 8 as a figure-eight or two stacked loops, 9 with a straight or curved
tail, ...). A template is a few strokes, each a list of knots (open or closed) through which a
Catmull-Rom spline passes (long spans get extra knots on the spline). For every sample the generator
  1. picks a variant and moves its knots by a random smooth field (stroke-shape jitter; coincident
     knots such as corners move together, so joints stay closed);
  2. samples the splines densely, then applies a low-frequency elastic field, aspect, slant (shear)
     and rotation;
  3. fits the result into a 20x20 box (scaled with the resolution, random fill) centred in the
     image with a small random shift, as MNIST does;
  4. renders the strokes as a distance field: each dense point stamps a disc of random, slightly
     pressure-varying radius with a smoothstep antialiased edge into its pixel neighbourhood
     (`scatter_reduce(amax)`, i.e. intensity = falloff(distance to the stroke)), times a random
     peak intensity.
Labels are balanced (arange % 10, shuffled). All randomness is drawn up front from one seeded
`torch.Generator`; geometry is float64 and rendering uses only exactly-rounded float ops, so output
is bitwise deterministic and independent of batch size and thread count. 70k images at 28 px take
about 6 s (one thread). Train and test use different derived seeds; results are cached under
`data_home(root)/digits/` and regenerated when the cache file is missing or unreadable.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import torch

from ganzoo.data.base import (
    DataError,
    DataInfo,
    TensorImageDataset,
    fingerprint,
)
from ganzoo.registry import DATASETS
from ganzoo.storage import atomic_write, data_home

GENERATOR_VERSION = 1
SPLITS = ("train", "test")
_KNOT_GAP = 0.35  # template knots are subdivided so that neighbours are at most this far apart

# class -> [(weight, [(closed, knots), ...]), ...]; units: x right, y down, digit body ~[-.6,.6]x[-1,1]
TEMPLATES: dict[int, list] = {
    0: [(0.7, [(True, [(0, -1), (.42, -.82), (.58, -.3), (.55, .35), (.38, .85), (0, 1), (-.4, .82),
                       (-.56, .3), (-.55, -.35), (-.4, -.82)])]),
        (0.3, [(False, [(.2, -.96), (-.25, -.88), (-.52, -.35), (-.55, .35), (-.35, .85), (.05, 1),
                        (.42, .8), (.57, .2), (.5, -.45), (.28, -.9), (-.05, -1.02), (-.22, -.9)])])],
    1: [(0.5, [(False, [(.05, -1), (0, 0), (-.05, 1)])]),
        (0.35, [(False, [(-.22, -.74), (.05, -1)]), (False, [(.05, -1), (0, 0), (-.05, 1)])]),
        (0.15, [(False, [(-.22, -.74), (.05, -1)]), (False, [(.05, -1), (0, 0), (-.05, 1)]),
                (False, [(-.38, 1), (.35, 1)])])],
    2: [(0.65, [(False, [(-.5, -.55), (-.25, -.92), (.15, -1), (.47, -.75), (.45, -.3), (.15, .15),
                         (-.2, .55), (-.55, 1)]), (False, [(-.55, 1), (0, .97), (.6, 1)])]),
        (0.35, [(False, [(-.5, -.55), (-.25, -.92), (.15, -1), (.47, -.75), (.45, -.3), (.15, .15),
                         (-.15, .5), (-.4, .78), (-.6, 1.05), (-.37, 1.18), (-.03, .98), (-.03, .67),
                         (-.33, .59), (-.54, .85), (-.37, 1.07), (0, 1.07), (.3, 1.03), (.6, .98)])])],
    3: [(0.85, [(False, [(-.45, -.78), (-.1, -1), (.3, -.92), (.42, -.55), (.15, -.15), (-.15, -.05)]),
                (False, [(-.15, -.05), (.25, .05), (.5, .45), (.35, .88), (-.05, 1), (-.5, .78)])]),
        (0.15, [(False, [(-.45, -1), (.45, -1)]), (False, [(.45, -1), (0, -.15)]),
                (False, [(0, -.15), (.35, .05), (.5, .45), (.35, .88), (-.05, 1), (-.5, .78)])])],
    4: [(0.55, [(False, [(.3, -1), (-.55, .35)]), (False, [(-.55, .35), (.6, .35)]),
                (False, [(.3, -1), (.3, 1)])]),
        (0.45, [(False, [(-.45, -1), (-.5, .3)]), (False, [(-.5, .3), (.6, .3)]),
                (False, [(.35, -.8), (.32, 1)])])],
    5: [(1.0, [(False, [(.5, -1), (-.35, -1)]), (False, [(-.35, -1), (-.45, -.15)]),
               (False, [(-.45, -.15), (0, -.32), (.42, -.12), (.52, .38), (.28, .88), (-.15, 1),
                        (-.52, .78)])])],
    6: [(0.6, [(False, [(.4, -.95), (0, -.88), (-.35, -.45), (-.5, .2), (-.38, .8), (.05, 1), (.42, .75),
                        (.45, .25), (.1, -.02), (-.3, .12), (-.45, .4)])]),
        (0.4, [(False, [(.3, -1), (-.1, -.5), (-.42, .2), (-.38, .8), (.05, 1), (.42, .75), (.45, .25),
                        (.1, -.02), (-.3, .12), (-.42, .4)])])],
    7: [(0.55, [(False, [(-.55, -1), (.5, -1)]), (False, [(.5, -1), (.15, -.2), (-.15, 1)])]),
        (0.3, [(False, [(-.55, -1), (.5, -1)]), (False, [(.5, -1), (.15, -.2), (-.15, 1)]),
               (False, [(-.2, 0), (.45, 0)])]),
        (0.15, [(False, [(-.55, -.72), (-.55, -1)]), (False, [(-.55, -1), (.5, -1)]),
                (False, [(.5, -1), (.15, -.2), (-.15, 1)])])],
    8: [(0.6, [(True, [(.38, -.78), (0, -1), (-.38, -.8), (-.32, -.38), (0, -.08), (.42, .3), (.38, .82),
                       (0, 1), (-.42, .82), (-.42, .3), (0, -.08), (.32, -.38)])]),
        (0.4, [(True, [(0, -1), (.35, -.8), (.3, -.35), (0, -.1), (-.3, -.35), (-.35, -.8)]),
               (True, [(0, -.1), (.45, .15), (.5, .65), (0, 1), (-.5, .65), (-.45, .15)])])],
    9: [(0.6, [(True, [(.42, -.5), (.1, -.15), (-.35, -.28), (-.45, -.7), (-.05, -1), (.38, -.85)]),
               (False, [(.42, -.5), (.38, .2), (.3, 1)])]),
        (0.4, [(True, [(.42, -.5), (.1, -.15), (-.35, -.28), (-.45, -.7), (-.05, -1), (.38, -.85)]),
               (False, [(.42, -.5), (.42, .3), (.2, .9), (-.2, 1), (-.45, .8)])])],
}


def _catmull_rom(t):  # uniform Catmull-Rom weights of the 4 control points at parameter t in [0, 1]
    return (0.5 * (-t + 2 * t**2 - t**3), 0.5 * (2 - 5 * t**2 + 3 * t**3), 0.5 * (t + 4 * t**2 - 3 * t**3),
            0.5 * (-t**2 + t**3))


def _pieces(n: int, closed: bool) -> list[list[int]]:
    """Control-point indices of the Catmull-Rom pieces of a stroke of n knots (open ends repeat)."""
    return [[(i + j) % n if closed else min(max(i + j, 0), n - 1) for j in (-1, 0, 1, 2)]
            for i in range(n if closed else n - 1)]


def _subdivide(knots: list, closed: bool) -> list:
    """Insert knots on the spline so that neighbours are at most _KNOT_GAP apart."""
    out = []
    for idx in _pieces(len(knots), closed):
        cps = [knots[i] for i in idx]
        k = math.ceil(math.dist(cps[1], cps[2]) / _KNOT_GAP)
        for j in range(k):
            out.append(tuple(sum(w * p[d] for w, p in zip(_catmull_rom(j / k), cps)) for d in (0, 1)))
    return out if closed else out + [knots[-1]]


@lru_cache(maxsize=1)
def _compile() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Templates as tensors: knots [V, K, 2], Catmull-Rom pieces as knot indices [V, P, 4], the number
    of real pieces [V] and the weight of each variant per class [10, V]."""
    variants = []
    for label, styles in TEMPLATES.items():
        for weight, strokes in styles:
            knots, pieces = [], []
            for closed, pts in strokes:
                pts = _subdivide(pts, closed)
                pieces += [[len(knots) + i for i in idx] for idx in _pieces(len(pts), closed)]
                knots += pts
            variants.append((label, weight, knots, pieces))
    K, P = max(len(v[2]) for v in variants), max(len(v[3]) for v in variants)
    knots = torch.zeros(len(variants), K, 2, dtype=torch.float64)
    pieces = torch.zeros(len(variants), P, 4, dtype=torch.long)
    weights = torch.zeros(10, len(variants), dtype=torch.float64)
    for v, (label, weight, kn, pc) in enumerate(variants):
        knots[v, : len(kn)] = torch.tensor(kn, dtype=torch.float64)
        pieces[v] = torch.tensor(pc + [pc[-1]] * (P - len(pc)))  # padding repeats a piece: no effect
        weights[label, v] = weight
    return knots, pieces, torch.tensor([len(v[3]) for v in variants]), weights


def _field_params(g: torch.Generator, n: int, k: int, freq: tuple, amp: float, dim: int = 2) -> tuple:
    """A random smooth field R^2 -> R^dim: a sum of k sinusoids with random direction and phase."""
    f = freq[0] + (freq[1] - freq[0]) * torch.rand(n, k, generator=g, dtype=torch.float64)
    th = 2 * math.pi * torch.rand(n, k, generator=g, dtype=torch.float64)
    ph = 2 * math.pi * torch.rand(n, k, generator=g, dtype=torch.float64)
    a = amp * (2 * torch.rand(n, k, dim, generator=g, dtype=torch.float64) - 1)
    return f * torch.cos(th), f * torch.sin(th), ph, a


def _field(p: torch.Tensor, params: tuple, sl: torch.Tensor) -> torch.Tensor:
    """The field of samples `sl` at points p [B, M, 2]: [B, M, dim]."""
    wx, wy, ph, a = (t[sl] for t in params)
    out = torch.zeros(*p.shape[:2], a.shape[-1], dtype=p.dtype)
    for k in range(wx.shape[1]):  # explicit loop: no reduction whose order could depend on threads
        s = torch.sin(p[..., 0] * wx[:, k, None] + p[..., 1] * wy[:, k, None] + ph[:, k, None])
        out = out + s[..., None] * a[:, None, k]
    return out


def _stamp(pts: torch.Tensor, r: torch.Tensor, R: int, aa: float) -> torch.Tensor:
    """Max-composite of antialiased discs of radius r [B, M] centred at pts [B, M, 2] (pixels): images
    [B, R, R] of max (r + aa - dist) / (2 aa) over the points; clamping to [0, 1] and smoothstep come
    later (both monotone, so they commute with the max)."""
    B = pts.shape[0]
    s = float(r.max()) + aa  # support radius: pixel centres within s of a point, O of them per axis
    off = torch.arange(math.floor(2 * s) + 1, dtype=torch.float32)[:, None, None]  # [O, 1, 1]: big dims last
    c = pts.permute(2, 0, 1)  # [2, B, M]
    i = torch.ceil(c - (s + 0.5))[:, None] + off  # [2, O, B, M] pixel columns / rows
    d2 = ((i + 0.5 - c[:, None]) * (0.5 / aa)).square().masked_fill((i < 0) | (i >= R), math.inf)
    i = i.long().clamp_(0, R - 1)
    flat = (torch.arange(B)[:, None] * (R * R) + i[1] * R)[:, None] + i[0][None]  # [Oy, Ox, B, M]
    val = (r + aa) * (0.5 / aa) - torch.sqrt(d2[1][:, None] + d2[0][None])
    return torch.zeros(B * R * R).scatter_reduce_(0, flat.flatten(), val.flatten(), "amax").view(B, R, R)


def render_digits(n: int, seed: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate `n` digit images: (uint8 [n, 1, R, R], int64 labels [n]); deterministic in `seed`.
    Runs on one thread: the work is many mid-size ops that gain little from a second core and slow
    down several-fold when the cores are shared with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _render(n, seed, resolution)
    finally:
        torch.set_num_threads(threads)


def _render(n: int, seed: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    R, px = resolution, resolution / 28  # px: one MNIST pixel in pixels at this resolution
    knots_t, pieces_t, npieces, weights = _compile()
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=g)]
    variant = torch.multinomial(weights[labels], 1, generator=g).squeeze(1)

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g, dtype=torch.float64)

    shape_f = _field_params(g, n, 6, (2.0, 5.0), 0.05)  # stroke-shape jitter of the knots
    elastic_f = _field_params(g, n, 3, (0.8, 2.0), 0.09)  # smooth elastic distortion
    pressure_f = _field_params(g, n, 2, (1.0, 3.0), 0.1, dim=1)  # stroke width along the stroke
    aspect, rot, fill = torch.exp(u(0.0, 0.4)), u(-0.25, 0.25), u(0.85, 1.0)
    shear = (0.12 + 0.25 * torch.randn(n, generator=g, dtype=torch.float64)).clamp(-0.35, 0.6)
    shift, radius, peak = u(-1.0, 1.0, 2) * px, u(0.75, 1.75) * px, u(0.92, 1.0)

    T = math.ceil(6 * px)  # points per spline piece (neighbouring knots are <= ~4 px apart)
    t = torch.arange(T, dtype=torch.float64) / T  # t = 1 is the next piece's t = 0
    basis = torch.stack(_catmull_rom(t), 1)  # [T, 4]
    aa = 0.5 * px  # half-width of the antialiased edge
    images = torch.empty(n, 1, R, R, dtype=torch.uint8)
    batch = max(16, round(512 * px**-3))  # keeps temporaries ~10 MB (larger ones are slow to allocate)
    # Batches of samples sorted by (stamp size, variant), so that each batch needs few pieces and a
    # small stamp; a sample's pixels do not depend on the batch it is rendered in.
    stamp = torch.floor(2 * (radius * (1 + pressure_f[3].abs().sum((1, 2))) + aa))
    order = torch.argsort(stamp * len(pieces_t) + variant, stable=True)
    for start in range(0, n, batch):
        sl = order[start:start + batch]
        B, v = len(sl), variant[sl]
        kn = knots_t[v]
        kn = kn + _field(kn, shape_f, sl)
        idx = pieces_t[v, : int(npieces[v].max())].reshape(B, -1, 1).expand(-1, -1, 2)
        cp = torch.gather(kn, 1, idx).view(B, -1, 4, 2)
        pts = sum(basis[None, None, :, j, None] * cp[:, :, None, j] for j in range(4)).view(B, -1, 2)
        pts = pts + _field(pts, elastic_f, sl)
        r = radius[sl, None] * (1 + _field(pts, pressure_f, sl)[..., 0])
        x, y = pts[..., 0] * aspect[sl, None], pts[..., 1]
        x = x - shear[sl, None] * y
        c, s = torch.cos(rot[sl, None]), torch.sin(rot[sl, None])
        pts = torch.stack([c * x - s * y, s * x + c * y], -1)
        lo, hi = pts.amin(1, keepdim=True), pts.amax(1, keepdim=True)
        ink = fill[sl, None, None] * 20 * px - 2 * radius[sl, None, None]  # the ink fills the 20 px box
        scale = ink / (hi - lo).amax(-1, keepdim=True)
        pts = ((pts - (lo + hi) / 2) * scale + R / 2 + shift[sl, None]).float()
        im = _stamp(pts, r.float(), R, aa).clamp_(0, 1)
        im = im * im * (3 - 2 * im) * (peak[sl].float() * 255)[:, None, None]  # smoothstep edge, intensity
        images[sl, 0] = im.round().to(torch.uint8)
    return images, labels


def _load(path, n: int, R: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached (images, labels), or None when the file is missing, corrupt or not what we expect."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        im, lb = d["images"], d["labels"]
        want = (torch.uint8, (n, 1, R, R), torch.int64, (n,))
        return (im, lb) if (im.dtype, tuple(im.shape), lb.dtype, tuple(lb.shape)) == want else None
    except Exception:  # corrupt / truncated / foreign file: regenerate
        return None


@DATASETS.register("digits")
def build_digits(*, split: str = "train", seed: int = 0, root: str | None = None, resolution: int = 28,
                 num_train: int = 60000, num_test: int = 10000) -> TensorImageDataset:
    """The built-in procedural digits (see the module docstring); cached after the first call."""
    if split not in SPLITS:
        raise DataError(f"digits: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    R, n = int(resolution), int(num_train if split == "train" else num_test)
    if R < 16:
        raise DataError(f"digits: resolution must be >= 16 (got {R}); set dataset.resolution")
    if n < 1:
        raise DataError(f"digits: num_{split} must be >= 1 (got {n}); set dataset.num_{split}")
    params = {"dataset": "digits", "version": GENERATOR_VERSION, "split": split, "seed": int(seed),
              "resolution": R, "size": n}
    fp = fingerprint(params)
    path = data_home(root) / "digits" / f"{split}-{fp[:16]}.pt"
    data = _load(path, n, R)
    if data is None:
        data = render_digits(n, int(fingerprint({"digits": split, "seed": int(seed)})[:15], 16), R)
        try:
            cache = {"images": data[0], "labels": data[1], "params": params}
            atomic_write(path, lambda f: torch.save(cache, f))
        except OSError as e:  # the cache is an optimisation; an unwritable data home is not fatal
            warnings.warn(f"digits: could not write cache {path}: {e}", stacklevel=2)
    info = DataInfo(name="digits", channels=1, resolution=R, num_classes=10, size=n,
                    fields=("image", "label"), fingerprint=fp)
    return TensorImageDataset(info, data[0], data[1])
