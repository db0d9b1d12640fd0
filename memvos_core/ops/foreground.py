"""Foreground colour at soft matte edges (decontamination), in torch on any device.

Where the alpha is between 0 and 1 a pixel mixes the object's colour with the background's:
``I = a*F + (1-a)*B``. Putting that pixel over a new background as ``a*I + ...`` keeps the old
background's tint in the edge (a green fringe from a green screen, a bright halo from a sky).
``estimate_foreground`` recovers F (and B) with the multilevel method of Germer et al. (2020,
"Fast Multi-Level Foreground Estimation", the one pymatting implements): from a one-pixel image
up to full size, each level solves per pixel the 2x2 least-squares system of the compositing
equation plus a smoothness term that ties F and B to their 4 neighbours, weighted more where the
alpha is flat. Here each sweep updates every pixel at once (Jacobi, batched on the GPU) where
pymatting updates them in place one after another, so it takes a few more sweeps per level.
"""
import math

import torch
import torch.nn.functional as F

from .chunking import run_chunked
from .inputs import check_frames

SWEEPS_SMALL = 10   # sweeps on levels no larger than SMALL_SIDE (cheap, they set the colours' layout)
SWEEPS_LARGE = 2    # sweeps on the larger levels
SMALL_SIDE = 32
FOREGROUND_MODES = ("straight", "premultiplied")


def _neighbours(x):
    """The 4 neighbours of every pixel of ``[B,C,H,W]`` (borders replicated)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return p[..., :-2, 1:-1], p[..., 2:, 1:-1], p[..., 1:-1, :-2], p[..., 1:-1, 2:]


def _level_system(image, alpha, regularization, gradient_weight):
    """What a level's sweeps share (it depends on the alpha only): the neighbour weights and the
    inverse of each pixel's 2x2 system, applied to the data term ``a*I``, ``(1-a)*I``."""
    weights = [regularization + gradient_weight * (alpha - an).abs() for an in _neighbours(alpha)]
    total = sum(weights)
    a00, a01, a11 = alpha * alpha + total, alpha * (1.0 - alpha), (1.0 - alpha) ** 2 + total
    det = a00 * a11 - a01 * a01
    inverse = (a11 / det, -a01 / det, a00 / det)
    data = torch.cat([alpha * image, (1.0 - alpha) * image], 1)
    return weights, inverse, data


def _sweep(fb, system):
    """One Jacobi sweep over ``fb = [F, B]`` ``[B,6,H,W]``."""
    weights, (i00, i01, i11), data = system
    b = data + sum(w * n for w, n in zip(weights, _neighbours(fb)))
    b0, b1 = b[:, :3], b[:, 3:]
    return torch.cat([i00 * b0 + i01 * b1, i01 * b0 + i11 * b1], 1).clamp(0, 1)


def _resize(x, size):
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="area" if down else "bilinear",
                         **({} if down else {"align_corners": False}))


def estimate_foreground_chunk(image, alpha, regularization=1e-5, gradient_weight=1.0):
    """``image [B,3,H,W]``, ``alpha [B,1,H,W]`` float32 on one device -> ``(F, B)`` ``[B,3,H,W]``."""
    height, width = image.shape[-2:]
    levels = max(1, math.ceil(math.log2(max(height, width, 2))))
    mean = image.mean((-2, -1), keepdim=True)
    fb = torch.cat([mean, mean], 1)
    for level in range(levels + 1):
        size = (max(1, round(height ** (level / levels))), max(1, round(width ** (level / levels))))
        system = _level_system(_resize(image, size), _resize(alpha, size), regularization, gradient_weight)
        fb = _resize(fb, size)
        for _ in range(SWEEPS_SMALL if min(size) <= SMALL_SIDE else SWEEPS_LARGE):
            fb = _sweep(fb, system)
    return fb[:, :3], fb[:, 3:]


def foreground_bytes():
    """Working bytes per pixel: image, alpha, F, B, the 2x2 system and the padded neighbours."""
    return 4 * (3 * 8 + 6)


def estimate_foreground(frames, alpha, regularization=1e-5, gradient_weight=1.0, chunk_size=None, compute=None):
    """Foreground colour of ``frames`` (IMAGE ``[T,H,W,3]`` float 0..1) under ``alpha``
    (``[T,H,W]`` float 0..1, the frames' size). Returns IMAGE ``[T,H,W,3]`` float32: where alpha
    is 1 the frame itself, at soft edges the object's colour without the background's; where
    alpha is 0 a smooth continuation (multiply by alpha, or use ``foreground_rgba``)."""
    frames = check_frames(frames)
    if not torch.is_tensor(alpha) or alpha.dim() != 3 or tuple(alpha.shape) != tuple(frames.shape[:3]):
        raise ValueError(f"alpha has shape {tuple(getattr(alpha, 'shape', ()))}: give one matte [T,H,W] per frame, "
                         f"at the frames' size {tuple(frames.shape[:3])}")

    def work(t0, t1, device):
        image = frames[t0:t1].to(device).float().permute(0, 3, 1, 2)
        a = alpha[t0:t1].to(device).float().clamp(0, 1).unsqueeze(1)
        fg, _ = estimate_foreground_chunk(image, a, regularization, gradient_weight)
        return fg.permute(0, 2, 3, 1)
    pixels = frames.shape[1] * frames.shape[2]
    parts = run_chunked(frames.shape[0], work, bytes_per_frame=pixels * foreground_bytes(), compute=compute,
                        source_device=frames.device, chunk_size=chunk_size)
    return torch.cat(parts)


def foreground_rgba(rgb, alpha, mode="straight"):
    """``[...,H,W,3]`` colour and ``[...,H,W]`` alpha -> ``[...,H,W,4]``: straight colour, or
    colour multiplied by the alpha (``premultiplied``, what EXR and most compositors expect)."""
    if mode not in FOREGROUND_MODES:
        raise ValueError(f"foreground mode {mode!r} is not one of {', '.join(FOREGROUND_MODES)}")
    a = alpha.unsqueeze(-1)
    return torch.cat([rgb * a if mode == "premultiplied" else rgb, a], -1)


__all__ = ["FOREGROUND_MODES", "estimate_foreground", "estimate_foreground_chunk", "foreground_rgba"]
