"""Mask refinement: threshold, fill holes, remove islands, grow/shrink, feather, guided filter.

Every function takes masks as a MASK ``[T,H,W]`` or per-object masks ``[T,N,H,W]`` (float,
0..1, 1 = object) and returns float32 of the same shape. Objects and frames are independent;
frames go through in chunks bounded by a memory budget (``chunking.run_chunked``): with
``compute=Compute(device=..., output_device=...)`` each chunk is computed on ``device`` and
handed back on ``output_device`` (default: both where the masks are). ``chunk_size`` (frames)
overrides the budget. Region decisions (holes, islands) are made on ``mask >= 0.5``; soft values
elsewhere are kept. ``refine_chain.refine_masks`` runs a whole chain of steps on each chunk.
"""
import math

import torch
import torch.nn.functional as F

from . import kernels
from .chunking import Compute, run_chunked
from .inputs import check_aspect, check_frames, resize_masks

FLOAT_BYTES = 4


def _check_masks(masks, name="masks"):
    """``[T,H,W]`` / ``[T,N,H,W]`` float or bool masks (``[H,W]`` promoted to one frame)."""
    if not torch.is_tensor(masks):
        raise TypeError(f"{name} must be a torch tensor (MASK [T,H,W] or [T,N,H,W]), got {type(masks).__name__}")
    if masks.dim() == 2:
        masks = masks.unsqueeze(0)
    if masks.dim() not in (3, 4):
        raise ValueError(f"{name} has shape {tuple(masks.shape)}: expected a MASK [T,H,W] or per-object "
                         "masks [T,N,H,W] with values 0..1")
    if not (masks.is_floating_point() or masks.dtype == torch.bool):
        raise ValueError(f"{name} has dtype {masks.dtype}: expected float values 0..1 (convert a label "
                         "map with (labels == id).float())")
    return masks


def _step_bytes(step, device, radius=0):
    """Working bytes per pixel of one plane for a chunk-level step (input and output included)."""
    if step == "feather":  # input, a padded copy, a pass, its clamped output (measured: 19 B)
        return 5 * FLOAT_BYTES
    if step == "threshold":
        return 2 * FLOAT_BYTES
    return 2 * FLOAT_BYTES + kernels.bytes_per_pixel(step, device, radius)


def _plane_op(masks, fn, step, compute, chunk_size, radius=0, name="masks"):
    """Apply ``fn`` to float32 ``[B,H,W]`` planes on the compute device, a budget-sized chunk of
    frames at a time; the result has the masks' shape, on the output device."""
    masks = _check_masks(masks, name)
    compute = compute or Compute()
    device, _ = compute.on(masks.device)
    planes = masks.reshape(-1, *masks.shape[-2:])
    per_frame = masks.shape[1] if masks.dim() == 4 else 1
    pixels = per_frame * masks.shape[-2] * masks.shape[-1]
    work_bytes = _step_bytes(step, device, radius)

    def work(t0, t1, dev):
        return fn(planes[t0 * per_frame:t1 * per_frame].to(dev).float())
    parts = run_chunked(masks.shape[0], work, bytes_per_frame=pixels * work_bytes, compute=compute,
                        source_device=masks.device, chunk_size=chunk_size)
    return torch.cat(parts).reshape(masks.shape)


# Chunk-level steps on float32 [B,H,W] planes, on whatever device the planes are.
def _threshold(planes, level):
    return (planes >= level).float()


def _fill_holes(planes, max_hole_px):
    return planes.masked_fill(kernels.holes(planes < 0.5, max_hole_px), 1.0)


def _remove_islands(planes, min_size_px, connectivity):
    return planes.masked_fill(kernels.small_regions(planes >= 0.5, min_size_px, connectivity), 0.0)


def _grow_shrink(planes, radius):
    if radius == 0:
        return planes
    return kernels.disc_dilate(planes, radius) if radius > 0 else kernels.disc_erode(planes, -radius)


def _feather(planes, radius):
    return blur(planes.unsqueeze(1), radius)[:, 0].clamp(0, 1)


def _check_level(level):
    if not 0.0 <= float(level) <= 1.0:
        raise ValueError(f"threshold level is {level}: give a value in 0..1")
    return float(level)


def threshold(masks, level=0.5, chunk_size=None, compute=None):
    """Hard 0/1 masks: 1 where ``mask >= level`` (``level`` in 0..1).

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. Returns float32 0/1 of the same shape."""
    level = _check_level(level)
    return _plane_op(masks, lambda p: _threshold(p, level), "threshold", compute, chunk_size)


def fill_holes(masks, max_hole_px=None, chunk_size=None, compute=None):
    """Fill holes: background regions (4-connected) that do not touch the image border.

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. ``max_hole_px``: fill only holes of at most
    this many pixels (``None``: all). Filled pixels become 1, others keep their value.
    Returns float32, same shape."""
    return _plane_op(masks, lambda p: _fill_holes(p, max_hole_px), "holes", compute, chunk_size)


def _check_min_size(min_size_px):
    min_size_px = int(min_size_px)
    if min_size_px < 0:
        raise ValueError(f"min_size_px is {min_size_px}: give a pixel count >= 0")
    return min_size_px


def remove_islands(masks, min_size_px, connectivity=8, chunk_size=None, compute=None):
    """Zero every connected object region (of ``mask >= 0.5``) smaller than ``min_size_px`` pixels.

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1; regions are found per frame and object with
    ``connectivity`` 4 or 8. Kept regions keep their soft values. Returns float32, same shape."""
    min_size_px = _check_min_size(min_size_px)
    return _plane_op(masks, lambda p: _remove_islands(p, min_size_px, connectivity), "islands", compute,
                     chunk_size)


def grow_shrink(masks, pixels, chunk_size=None, compute=None):
    """Grow (``pixels > 0``) or shrink (``pixels < 0``) masks by a disc of radius ``|pixels|``.

    Grey-level max (grow) / min (shrink) over the disc, so soft masks stay soft and a hard disc
    of radius R becomes one of radius R + pixels. Shrinking does not eat into a mask from the
    frame edge. masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. Returns float32, same shape."""
    radius = int(round(float(pixels)))
    return _plane_op(masks, lambda p: _grow_shrink(p, radius), "dilate", compute, chunk_size, radius=abs(radius))


# Below this the Gaussian is one pixel wide (the identity); a smaller sigma would underflow in
# float32 and turn the kernel into 0/0 = NaN (feather_px 1e-200 from a link).
MIN_BLUR_RADIUS = 0.01


def gaussian_kernel(radius, device=None):
    """1-D Gaussian weights over ``[-ceil(radius), ceil(radius)]`` with sigma = radius / 3."""
    half = int(math.ceil(radius))
    x = torch.arange(-half, half + 1, dtype=torch.float32, device=device)
    weights = torch.exp(-0.5 * (x / (radius / 3.0)) ** 2)
    return weights / weights.sum()


def blur(planes, radius):
    """Separable Gaussian blur of ``[B,C,H,W]`` (sigma = radius / 3), edges replicated.

    Every plane is one channel of a single depthwise convolution: on a batch of one-channel images
    the CPU's convolution took 72 bytes a pixel (measured; a 1 GiB feather chunk took 2 GiB, twice
    its budget); as channels about 15 bytes a pixel with the output, same values, four times faster."""
    if radius < MIN_BLUR_RADIUS:
        return planes
    kernel = gaussian_kernel(radius, planes.device)
    shape = planes.shape
    half, c = kernel.numel() // 2, shape[0] * shape[1]
    x = F.pad(planes.reshape(1, c, *shape[-2:]), (half, half, 0, 0), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, half, half), mode="replicate")
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c).reshape(shape)


def _check_feather(radius_px):
    radius = float(radius_px)
    if radius < 0:
        raise ValueError(f"feather radius is {radius_px}: give a radius >= 0 pixels")
    return radius


def feather(masks, radius_px, chunk_size=None, compute=None):
    """Soften mask edges with a Gaussian blur reaching ``radius_px`` pixels (sigma = radius / 3).

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. Returns float32 0..1, same shape."""
    radius = _check_feather(radius_px)
    return _plane_op(masks, lambda p: _feather(p, radius), "feather", compute, chunk_size)


# ------------------------------------------------------------------ guided filter (He et al.)
def _box_sum_1d(x, radius, dim):
    """Sum over a window of ``2*radius+1`` along ``dim``, clipped at the borders (cumsum)."""
    n, dim = x.shape[dim], dim % x.dim()
    pads = [0, 0] * (x.dim() - 1 - dim) + [radius + 1, radius]
    # ext[k] = sum of x[0 .. k-radius-1]: 0 before the start and the total past the end, so
    # the window [i-r, i+r] clipped to the image is ext[i + 2r + 1] - ext[i].
    ext = torch.cumsum(F.pad(x, pads), dim=dim)
    return ext.narrow(dim, 2 * radius + 1, n) - ext.narrow(dim, 0, n)


def box_mean(x, radius):
    """Mean over a ``(2r+1)^2`` window of ``[B,C,H,W]``, clipped at the image borders."""
    h, w = x.shape[-2:]
    s = _box_sum_1d(_box_sum_1d(x, radius, -1), radius, -2)
    ones_h = _box_sum_1d(torch.ones(h, device=x.device), radius, 0)
    ones_w = _box_sum_1d(torch.ones(w, device=x.device), radius, 0)
    return s / (ones_h.view(-1, 1) * ones_w.view(1, -1))


def guided_filter(guide, src, radius, eps):
    """Colour guided filter: ``guide [B,3,H,W]``, ``src [B,K,H,W]`` -> filtered ``[B,K,H,W]``.

    Per window, src is fitted as a linear function of the guide colour (ridge ``eps``), so the
    output follows the guide's edges; the 3x3 covariance is inverted in closed form."""
    mean_i = box_mean(guide, radius)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    prods = torch.stack([guide[:, i] * guide[:, j] for i, j in pairs], 1)
    cov = box_mean(prods, radius) - torch.stack([mean_i[:, i] * mean_i[:, j] for i, j in pairs], 1)
    del prods
    a, b, c, dd, e, f = cov.unbind(1)
    a, dd, f = a + eps, dd + eps, f + eps
    inv = torch.stack([dd * f - e * e, c * e - b * f, b * e - c * dd,
                       a * f - c * c, b * c - a * e, a * dd - b * b], 1)
    det = a * inv[:, 0] + b * inv[:, 1] + c * inv[:, 2]
    inv = inv / det.unsqueeze(1)
    i00, i01, i02, i11, i12, i22 = inv.unbind(1)
    mean_p = box_mean(src, radius)
    out = []
    for k in range(src.shape[1]):
        p = src[:, k:k + 1]
        cov_ip = box_mean(guide * p, radius) - mean_i * mean_p[:, k:k + 1]
        c0, c1, c2 = cov_ip.unbind(1)
        coef = torch.stack([i00 * c0 + i01 * c1 + i02 * c2,
                            i01 * c0 + i11 * c1 + i12 * c2,
                            i02 * c0 + i12 * c1 + i22 * c2], 1)
        offset = mean_p[:, k:k + 1] - (coef * mean_i).sum(1, keepdim=True)
        out.append((box_mean(coef, radius) * guide).sum(1, keepdim=True) + box_mean(offset, radius))
    return torch.cat(out, 1)


def _guided_bytes(objects):
    """Working bytes per pixel of a frame in the guided filter: the guide, ~36 float planes of
    colour statistics and ~14 per object."""
    return FLOAT_BYTES * (3 + 36 + 14 * objects)


def _check_guided(radius, eps):
    if int(radius) < 1 or float(eps) <= 0:
        raise ValueError(f"guided filter radius {radius} / eps {eps}: need radius >= 1 and eps > 0")
    return int(radius), float(eps)


def _refine_edges_chunk(guide, src, radius, eps):
    """``guide [t,H,W,3]``, ``src [t,K,h,w]`` on one device -> alpha ``[t,K,H,W]``."""
    size = tuple(guide.shape[1:3])
    src = resize_masks(src.float(), size)
    return guided_filter(guide.float().permute(0, 3, 1, 2), src, radius, eps).clamp(0, 1)


def refine_edges(frames, masks, radius=4, eps=1e-3, chunk_size=None, compute=None):
    """Edge-aware refinement: a soft alpha that follows the frame's fine edges (guided filter).

    frames: IMAGE ``[T,H,W,3]`` float 0..1 (the guide, at source resolution).
    masks: ``[T,h,w]`` or ``[T,N,h,w]`` float 0..1, at the frames' size or any size with the
    same aspect ratio (resized bilinearly to the frames' size first).
    radius: window radius in pixels (about the width of the uncertain band around the edge);
    eps: regularisation (smaller follows weaker edges; ~1e-4..1e-2 for 0..1 images).
    Chunks hold as many frames as the budget allows for ~55 float planes per frame and object.
    Returns float32 alpha 0..1 at the frames' size, on the output device (default: the
    frames'): ``[T,H,W]`` or ``[T,N,H,W]``."""
    frames = check_frames(frames)
    if not torch.is_tensor(masks) or masks.dim() not in (3, 4) or masks.shape[0] != frames.shape[0]:
        raise ValueError(f"masks has shape {tuple(masks.shape)} but frames has {frames.shape[0]} frames: "
                         "give masks [T,H,W] or [T,N,H,W] with one entry per frame")
    radius, eps = _check_guided(radius, eps)
    size = tuple(frames.shape[1:3])
    check_aspect(tuple(masks.shape[-2:]), size, "masks")
    per_object = masks.dim() == 4
    objects = masks.shape[1] if per_object else 1

    def work(t0, t1, device):
        src = masks[t0:t1].to(device)
        alpha = _refine_edges_chunk(frames[t0:t1].to(device), src if per_object else src.unsqueeze(1), radius, eps)
        return alpha if per_object else alpha[:, 0]
    parts = run_chunked(frames.shape[0], work, bytes_per_frame=size[0] * size[1] * _guided_bytes(objects),
                        compute=compute, source_device=frames.device, chunk_size=chunk_size)
    return torch.cat(parts)
