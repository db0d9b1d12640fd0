"""Mask refinement: threshold, fill holes, remove islands, grow/shrink, feather, guided filter.

Every function takes masks as a MASK ``[T,H,W]`` or per-object masks ``[T,N,H,W]`` (float,
0..1, 1 = object) and returns float32 of the same shape on the same device. Objects and frames
are independent; frames are processed in chunks (``chunk_size`` frames, default: ~4 M pixels
worth) to bound temporary memory.
Region decisions (holes, islands) are made on ``mask >= 0.5``; soft values elsewhere are kept.
"""
import math

import torch
import torch.nn.functional as F

from .inputs import check_aspect, check_frames, frame_chunks, resize_masks
from .morphology import border_touching, component_sizes, disc_dilate, disc_erode, label_components

PIXELS_PER_CHUNK = 1 << 22   # ~4.2 M: 10 frames of 480p or 2 of 1080p per chunk


def _as_planes(masks, name="masks"):
    """float32 ``[B,H,W]`` view of ``[T,H,W]`` / ``[T,N,H,W]`` masks, plus the shape to restore."""
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
    return masks.reshape(-1, *masks.shape[-2:]).float(), masks.shape


def _per_chunk(masks, chunk_size, fn, name="masks"):
    """Apply ``fn`` to ``[B,H,W]`` planes, a chunk at a time: ``chunk_size`` frames, or by default
    as many planes as hold ``PIXELS_PER_CHUNK`` pixels (labelling keeps ~8 int64 copies)."""
    planes, shape = _as_planes(masks, name)
    if chunk_size is None:
        step = max(1, PIXELS_PER_CHUNK // (shape[-1] * shape[-2]))
    else:
        step = max(1, int(chunk_size)) * (shape[1] if len(shape) == 4 else 1)
    out = torch.cat([fn(planes[s:s + step]) for s in range(0, planes.shape[0], step)])
    return out.reshape(shape)


def threshold(masks, level=0.5):
    """Hard 0/1 masks: 1 where ``mask >= level`` (``level`` in 0..1).

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. Returns float32 0/1 of the same shape."""
    if not 0.0 <= float(level) <= 1.0:
        raise ValueError(f"threshold level is {level}: give a value in 0..1")
    planes, shape = _as_planes(masks)
    return (planes >= level).float().reshape(shape)


def fill_holes(masks, max_hole_px=None, chunk_size=None):
    """Fill holes: background regions (4-connected) that do not touch the image border.

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. ``max_hole_px``: fill only holes of at most
    this many pixels (``None``: all). Filled pixels become 1, others keep their value.
    Returns float32, same shape and device."""
    def run(planes):
        background = planes < 0.5
        labels = label_components(background, connectivity=4)
        holes = background & ~border_touching(labels)
        if max_hole_px is not None:
            holes &= component_sizes(labels) <= int(max_hole_px)
        return torch.where(holes, torch.ones_like(planes), planes)
    return _per_chunk(masks, chunk_size, run)


def remove_islands(masks, min_size_px, connectivity=8, chunk_size=None):
    """Zero every connected object region (of ``mask >= 0.5``) smaller than ``min_size_px`` pixels.

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1; regions are found per frame and object with
    ``connectivity`` 4 or 8. Kept regions keep their soft values. Returns float32, same shape."""
    min_size_px = int(min_size_px)
    if min_size_px < 0:
        raise ValueError(f"min_size_px is {min_size_px}: give a pixel count >= 0")

    def run(planes):
        labels = label_components(planes >= 0.5, connectivity)
        small = (labels > 0) & (component_sizes(labels) < min_size_px)
        return torch.where(small, torch.zeros_like(planes), planes)
    return _per_chunk(masks, chunk_size, run)


def grow_shrink(masks, pixels, chunk_size=None):
    """Grow (``pixels > 0``) or shrink (``pixels < 0``) masks by a disc of radius ``|pixels|``.

    Grey-level max (grow) / min (shrink) over the disc, so soft masks stay soft and a hard disc
    of radius R becomes one of radius R + pixels. Shrinking does not eat into a mask from the
    frame edge. masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. Returns float32, same shape."""
    radius = int(round(float(pixels)))
    op = disc_dilate if radius > 0 else disc_erode
    return _per_chunk(masks, chunk_size, lambda planes: op(planes, abs(radius)))


def gaussian_kernel(radius, device=None):
    """1-D Gaussian weights over ``[-ceil(radius), ceil(radius)]`` with sigma = radius / 3."""
    half = int(math.ceil(radius))
    x = torch.arange(-half, half + 1, dtype=torch.float32, device=device)
    weights = torch.exp(-0.5 * (x / (radius / 3.0)) ** 2)
    return weights / weights.sum()


def blur(planes, radius):
    """Separable Gaussian blur of ``[B,C,H,W]`` (sigma = radius / 3), edges replicated."""
    if radius <= 0:
        return planes
    kernel = gaussian_kernel(radius, planes.device)
    half, c = kernel.numel() // 2, planes.shape[1]
    x = F.pad(planes, (half, half, 0, 0), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, half, half), mode="replicate")
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def feather(masks, radius_px, chunk_size=None):
    """Soften mask edges with a Gaussian blur reaching ``radius_px`` pixels (sigma = radius / 3).

    masks: ``[T,H,W]`` or ``[T,N,H,W]`` float 0..1. Returns float32 0..1, same shape."""
    radius = float(radius_px)
    if radius < 0:
        raise ValueError(f"feather radius is {radius_px}: give a radius >= 0 pixels")
    return _per_chunk(masks, chunk_size, lambda p: blur(p.unsqueeze(1), radius)[:, 0].clamp(0, 1))


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


def refine_edges(frames, masks, radius=4, eps=1e-3, chunk_size=None):
    """Edge-aware refinement: a soft alpha that follows the frame's fine edges (guided filter).

    frames: IMAGE ``[T,H,W,3]`` float 0..1 (the guide, at source resolution).
    masks: ``[T,h,w]`` or ``[T,N,h,w]`` float 0..1, at the frames' size or any size with the
    same aspect ratio (resized bilinearly to the frames' size first).
    radius: window radius in pixels (about the width of the uncertain band around the edge);
    eps: regularisation (smaller follows weaker edges; ~1e-4..1e-2 for 0..1 images).
    chunk_size: frames per chunk (default: ~2 M pixels' worth; the filter keeps ~20 float
    planes per frame and object).
    Returns float32 alpha 0..1 at the frames' size and on their device: ``[T,H,W]`` or
    ``[T,N,H,W]``."""
    frames = check_frames(frames)
    if not torch.is_tensor(masks) or masks.dim() not in (3, 4) or masks.shape[0] != frames.shape[0]:
        raise ValueError(f"masks has shape {tuple(masks.shape)} but frames has {frames.shape[0]} frames: "
                         "give masks [T,H,W] or [T,N,H,W] with one entry per frame")
    if int(radius) < 1 or float(eps) <= 0:
        raise ValueError(f"guided filter radius {radius} / eps {eps}: need radius >= 1 and eps > 0")
    size = tuple(frames.shape[1:3])
    check_aspect(tuple(masks.shape[-2:]), size, "masks")
    per_object = masks.dim() == 4
    if chunk_size is None:
        chunk_size = max(1, (PIXELS_PER_CHUNK // 2) // (size[0] * size[1] * (masks.shape[1] if per_object else 1)))
    out = []
    for t0, t1 in frame_chunks(frames.shape[0], chunk_size):
        src = masks[t0:t1].float()
        src = src if per_object else src.unsqueeze(1)
        src = resize_masks(src.to(frames.device), size)
        guide = frames[t0:t1].float().permute(0, 3, 1, 2)
        alpha = guided_filter(guide, src, int(radius), float(eps)).clamp(0, 1)
        out.append(alpha if per_object else alpha[:, 0])
    return torch.cat(out)
