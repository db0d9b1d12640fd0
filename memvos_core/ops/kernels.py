"""Morphology kernels where each is fastest: a library on CPU tensors, torch on the others.

On the CPU, connected components, hole filling, island removal and disc dilation/erosion go to
OpenCV when it can be imported (any of its packages: they all provide ``cv2``), else to SciPy
(which ComfyUI itself requires); tensors on a GPU keep the whole-tensor torch kernels of
``morphology``. Every path gives the same pixels (tests compare them on edge cases). With
neither library importable the torch kernels run everywhere, and one log line says so.

Kernels take ``[B,H,W]`` tensors and return tensors on the same device. ``use_backend(name)``
forces one path (benchmarks, tests).
"""
import importlib
import logging
from contextlib import contextmanager
from math import isqrt

import numpy as np
import torch

from . import morphology

LOG = logging.getLogger("memvos")

BACKENDS = ("opencv", "scipy", "torch")
# Per op, the CPU paths in the order they measured fastest (bench/bench_ops.py, 1080p).
PREFERENCE = {
    "label": ("opencv", "scipy", "torch"),
    "holes": ("opencv", "scipy", "torch"),
    "islands": ("opencv", "scipy", "torch"),
    "dilate": ("opencv", "scipy", "torch"),
}
# Working bytes per pixel of one mask plane, for the chunk budget (peaks measured at 1080p, with
# a margin): torch labelling keeps ~20 int64 arrays at its peak; the libraries work one plane
# at a time.
_TORCH_LABEL_BYTES = 176
_LIBRARY_BYTES = 16
# OpenCV's grey-level disc costs grow with the disc's area, the torch kernel's with log(radius):
# at 1080p (bench/bench_ops.py) a soft mask grown by 5 px takes 11 ms either way, by 20 px 54 ms in
# OpenCV and 31 ms in torch. Beyond this radius soft masks take the torch kernel; 0/1 masks stay
# with OpenCV, whose uint8 path is ~4x faster than its float one.
_SOFT_DISC_LIBRARY_MAX_RADIUS = 8

_modules = {}
_forced = None
_warned = False


def _library(name):
    """The imported module for a backend (``cv2``, ``scipy.ndimage``), or None if absent."""
    if name not in _modules:
        module_name = {"opencv": "cv2", "scipy": "scipy.ndimage"}[name]
        try:
            _modules[name] = importlib.import_module(module_name)
        except Exception:  # ImportError, or a broken install (two cv2 packages over each other)
            _modules[name] = None
    return _modules[name]


def available():
    """The backends that can run here, fastest first."""
    return [b for b in BACKENDS if b == "torch" or _library(b) is not None]


@contextmanager
def use_backend(name):
    """Run CPU kernels on ``name`` (``opencv``, ``scipy``, ``torch``) inside the block."""
    global _forced
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
    if name not in available():
        raise ValueError(f"backend {name!r} is not installed here (available: {', '.join(available())})")
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def backend_for(device, op="label"):
    """The path ``op`` takes for tensors on ``device``."""
    global _warned
    if torch.device(device).type != "cpu":
        return "torch"
    if _forced is not None:
        return _forced
    for name in PREFERENCE[op]:
        if name == "torch" or _library(name) is not None:
            if name == "torch" and not _warned:
                _warned = True
                LOG.warning("MemVOS: neither OpenCV nor SciPy could be imported; mask clean-up runs on "
                            "slow torch kernels on the CPU (pip install scipy)")
            return name
    return "torch"


def bytes_per_pixel(op, device, radius=0):
    """Working bytes per pixel of one plane for ``op`` on ``device`` (for ``run_chunked``)."""
    if backend_for(device, op) != "torch" and not (op == "dilate" and int(radius) > _SOFT_DISC_LIBRARY_MAX_RADIUS):
        return _LIBRARY_BYTES
    if op == "dilate":  # the padded plane, its doubling table and the row windows
        levels = max(1, (2 * int(radius) + 1).bit_length())
        return 4 * (2 * levels + 6)
    return _TORCH_LABEL_BYTES


# ------------------------------------------------------------------ connected components

def _planes(tensor):
    """numpy views of each plane of a CPU tensor (bool as uint8)."""
    array = tensor.contiguous().numpy()
    return array.view(np.uint8) if array.dtype == np.bool_ else array


def _label_plane(backend, fg, connectivity, need_areas):
    """``(labels int32 [H,W], count incl. background, areas [count] or None, touches_border [count])``."""
    if backend == "opencv":
        cv2 = _library("opencv")
        if need_areas:  # the statistics pass costs more than the labelling: only when sizes matter
            count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=connectivity,
                                                                      ltype=cv2.CV_32S)
            areas = stats[:, cv2.CC_STAT_AREA]
        else:
            count, labels = cv2.connectedComponents(fg, connectivity=connectivity, ltype=cv2.CV_32S)
            areas = None
    else:
        structure = np.ones((3, 3), bool) if connectivity == 8 else None
        labels, n = _library("scipy").label(fg, structure=structure)
        count = n + 1
        areas = np.bincount(labels.ravel(), minlength=count) if need_areas else None
    border = np.zeros(count, bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        border[edge] = True
    return labels, count, areas, border


def _pick(chosen, labels):
    """Bool ``[H,W]``: ``chosen[labels]``; through an 8-bit lookup table when the labels fit one
    (OpenCV's LUT is ~40x faster than numpy's gather at 1080p)."""
    if not chosen.any():
        return np.zeros(labels.shape, bool)
    cv2 = _library("opencv")
    if cv2 is not None and chosen.size <= 256:
        table = np.zeros(256, np.uint8)
        table[:chosen.size] = chosen
        return cv2.LUT(labels.astype(np.uint8), table).view(bool)
    return chosen[labels]


def _check_connectivity(connectivity):
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity is {connectivity}: use 4 or 8")


def label_components(fg, connectivity=8):
    """Connected components of bool ``fg [B,H,W]`` -> int64 labels, 0 background, every
    component one positive label unique across the batch (numbering differs between paths;
    the regions are the same)."""
    _check_connectivity(connectivity)
    backend = backend_for(fg.device, "label")
    if backend == "torch":
        return morphology.label_components(fg, connectivity)
    out, offset = [], 0
    for plane in _planes(fg):
        labels, count, _, _ = _label_plane(backend, plane, connectivity, need_areas=False)
        labels = torch.from_numpy(labels.astype(np.int64))
        out.append(torch.where(labels > 0, labels + offset, 0))
        offset += count
    return torch.stack(out)


def _region_select(fg, connectivity, op, keep, need_areas):
    """Bool ``[B,H,W]``: pixels of the components of ``fg`` for which
    ``keep(areas, touches_border)`` (per label arrays, index 0 = background) is True."""
    backend = backend_for(fg.device, op)
    out = []
    for plane in _planes(fg):
        labels, count, areas, border = _label_plane(backend, plane, connectivity, need_areas)
        chosen = np.array(keep(areas, border), dtype=bool).reshape(-1)
        if chosen.size == 1:
            chosen = np.full(count, bool(chosen[0]))
        chosen[0] = False
        out.append(torch.from_numpy(_pick(chosen, labels)))
    return torch.stack(out)


def holes(background, max_hole_px=None):
    """Bool ``[B,H,W]``: the 4-connected regions of ``background`` that do not touch the image
    border (with ``max_hole_px``, only those of at most that many pixels)."""
    if backend_for(background.device, "holes") == "torch":
        labels = morphology.label_components(background, connectivity=4)
        found = background & ~morphology.border_touching(labels)
        if max_hole_px is not None:
            found &= morphology.component_sizes(labels) <= int(max_hole_px)
        return found
    limit = None if max_hole_px is None else int(max_hole_px)
    return _region_select(background, 4, "holes",
                          lambda areas, border: ~border & (True if limit is None else areas <= limit),
                          need_areas=limit is not None)


def small_regions(fg, min_size_px, connectivity=8):
    """Bool ``[B,H,W]``: pixels of the components of ``fg`` smaller than ``min_size_px``."""
    _check_connectivity(connectivity)
    if backend_for(fg.device, "islands") == "torch":
        labels = morphology.label_components(fg, connectivity)
        return (labels > 0) & (morphology.component_sizes(labels) < int(min_size_px))
    return _region_select(fg, connectivity, "islands", lambda areas, border: areas < int(min_size_px),
                          need_areas=True)


# ------------------------------------------------------------------ disc dilation / erosion

def disc(radius):
    """uint8 ``[2r+1, 2r+1]`` structuring element: 1 where dx^2 + dy^2 <= r^2."""
    r = int(radius)
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.uint8)
    for dy in range(-r, r + 1):
        half = isqrt(r * r - dy * dy)
        kernel[dy + r, r - half:r + half + 1] = 1
    return kernel


def _scipy_disc(plane, r, dilate, outside):
    """Max (min) over a disc as the max (min) over rows dy of a horizontal window of half-width
    isqrt(r^2 - dy^2): SciPy's 1-D filters cost O(1) per pixel whatever the width."""
    ndi = _library("scipy")
    filter1d = ndi.maximum_filter1d if dilate else ndi.minimum_filter1d
    combine = np.maximum if dilate else np.minimum
    height = plane.shape[0]
    padded = np.pad(plane, ((r, r), (0, 0)), constant_values=outside)
    rows, out = {}, None
    for dy in range(r + 1):
        half = isqrt(r * r - dy * dy)
        if half not in rows:
            rows[half] = filter1d(padded, 2 * half + 1, axis=1, mode="constant", cval=outside)
        for shift in {dy, -dy}:
            part = rows[half][r + shift:r + shift + height]
            out = part.copy() if out is None else combine(out, part, out=out)
    return out


def _is_binary(x):
    return bool(((x == 0) | (x == 1)).all())


def _disc_backend(x, radius, binary=None):
    """Where a disc dilation/erosion of ``x`` runs: the measured faster path (see above).
    ``binary``: whether ``x`` holds only 0 and 1, if the caller knows."""
    backend = backend_for(x.device, "dilate")
    if _forced is None and backend != "torch" and int(radius) > _SOFT_DISC_LIBRARY_MAX_RADIUS:
        if not (_is_binary(x) if binary is None else binary):
            return "torch"
    return backend


def _disc(x, radius, dilate):
    if int(radius) <= 0:
        return x
    binary = None if backend_for(x.device, "dilate") == "torch" else _is_binary(x)
    backend = _disc_backend(x, radius, binary)
    if backend == "torch":
        return (morphology.disc_dilate if dilate else morphology.disc_erode)(x, radius)
    outside = 0.0 if dilate else 1.0
    if backend == "opencv":
        cv2 = _library("opencv")
        # 0/1 masks (thresholded ones, outlines) are exact in uint8, where OpenCV is ~4x faster.
        array = _planes(x.to(torch.uint8) if binary else x.float())
        fn = cv2.dilate if dilate else cv2.erode
        out = [fn(p, disc(radius), borderType=cv2.BORDER_CONSTANT, borderValue=outside) for p in array]
    else:
        out = [_scipy_disc(p, int(radius), dilate, outside) for p in _planes(x.float())]
    return torch.from_numpy(np.stack(out)).to(torch.float32)


def disc_dilate(x, radius):
    """Flat grey-level dilation of float ``x [B,H,W]`` by a disc; outside the image counts as 0."""
    return _disc(x, radius, dilate=True)


def disc_erode(x, radius):
    """Flat grey-level erosion by a disc; outside the image counts as 1 (a mask touching the
    frame edge is not eaten from the edge)."""
    return _disc(x, radius, dilate=False)
