"""Temporal stabilisation of mask sequences: flicker removed, fast motion not smeared.

Each output frame is a per-pixel weighted mean of the masks within ``radius`` frames, where a
neighbour's weight is a Gaussian in time times a Gaussian in the *frame* colour difference at
that pixel (a joint bilateral filter along time). Where the picture is static, neighbours agree
in colour and the mask is averaged over the window, which removes flicker; where something
moves, the colour at that pixel changes between frames, the neighbour's weight falls to ~0, and
the mask is left as it is, so a moving object leaves no trail. Only ``2*radius+1`` frames are
needed at a time: ``stabilize`` works in chunks, ``TemporalStabilizer`` frame by frame.
"""
from collections import deque

import torch
import torch.nn.functional as F

from .chunking import run_chunked
from .inputs import check_aspect, check_frames


def _guide(frames):
    """``[t,H,W,3]`` -> ``[t,3,H,W]`` float32, lightly blurred so sensor noise does not gate."""
    x = frames.float().permute(0, 3, 1, 2)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _weight(guide_a, guide_b, dt, color_sigma, time_sigma):
    # The max over 3x3 reaches past the guide's blur, so a pixel beside a moving edge (whose
    # blurred colour is only partly the object's) still counts as moving.
    diff = F.max_pool2d((guide_a - guide_b).pow(2).mean(1, keepdim=True), 3, stride=1, padding=1)[:, 0]
    return torch.exp(-diff / (2 * color_sigma ** 2) - dt * dt / (2 * time_sigma ** 2))


def _check_params(radius, color_sigma, time_sigma):
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"radius is {radius}: give the number of frames on each side (>= 0)")
    if float(color_sigma) <= 0:
        raise ValueError(f"color_sigma is {color_sigma}: give a positive colour tolerance (e.g. 0.05)")
    time_sigma = float(time_sigma) if time_sigma is not None else max(radius, 1)
    if time_sigma <= 0:
        raise ValueError(f"time_sigma is {time_sigma}: give a positive value in frames")
    return radius, float(color_sigma), time_sigma


def stabilize_bytes(objects):
    """Working bytes per mask pixel of a frame: the blurred guide and its squared difference, a
    weight, and per object the mask, the running total and a product (float32)."""
    return 4 * (4 + 4 + 4 * objects)


def stabilize(frames, masks, radius=2, color_sigma=0.05, time_sigma=None, chunk_size=None, compute=None):
    """Remove mask flicker in static regions while leaving moving regions untouched.

    frames: IMAGE ``[T,H,W,3]`` float 0..1, the guide (resized to the masks' size if needed).
    masks: ``[T,h,w]`` or ``[T,N,h,w]`` float 0..1 (per-object masks share the weights).
    radius: frames on each side of the window. color_sigma: colour difference (RMS over RGB,
    0..1 units) at which a neighbour's weight falls to ~0.6; raise it for noisy footage.
    time_sigma: Gaussian width in frames (default ``radius``).
    Returns float32 masks 0..1 of the masks' shape, on the output device (default: the masks').
    Memory: one budget-sized chunk (``chunk_size`` frames if given) plus ``2*radius`` frames."""
    frames = check_frames(frames)
    radius, color_sigma, time_sigma = _check_params(radius, color_sigma, time_sigma)
    if not torch.is_tensor(masks) or masks.dim() not in (3, 4) or masks.shape[0] != frames.shape[0]:
        raise ValueError(f"masks has shape {tuple(getattr(masks, 'shape', ()))} for {frames.shape[0]} frames: "
                         "give masks [T,H,W] or [T,N,H,W] with one entry per frame")
    check_aspect(tuple(masks.shape[-2:]), tuple(frames.shape[1:3]), "masks")
    per_object = masks.dim() == 4
    num_frames, size = masks.shape[0], tuple(masks.shape[-2:])
    objects = masks.shape[1] if per_object else 1
    frame_px = frames.shape[1] * frames.shape[2]

    def work(t0, t1, device):
        lo, hi = max(0, t0 - radius), min(num_frames, t1 + radius)
        guide = _guide(frames[lo:hi].to(device))
        if tuple(guide.shape[-2:]) != size:
            guide = F.interpolate(guide, size=size, mode="bilinear", align_corners=False, antialias=True)
        m = masks[lo:hi].to(device).float()
        m = m if per_object else m.unsqueeze(1)
        total = torch.zeros_like(m[t0 - lo:t1 - lo])
        weight_sum = torch.zeros_like(total[:, :1])
        for dt in range(-radius, radius + 1):
            # centres t in [a, b) whose neighbour t + dt exists in the clip
            a, b = max(t0, -dt), min(t1, num_frames - dt)
            if a >= b:
                continue
            w = _weight(guide[a - lo:b - lo], guide[a + dt - lo:b + dt - lo], dt, color_sigma, time_sigma)
            w = w.unsqueeze(1)
            total[a - t0:b - t0] += w * m[a + dt - lo:b + dt - lo]
            weight_sum[a - t0:b - t0] += w
        result = (total / weight_sum).clamp(0, 1)
        return result if per_object else result[:, 0]
    bytes_per_frame = size[0] * size[1] * stabilize_bytes(objects) + frame_px * 12
    parts = run_chunked(num_frames, work, bytes_per_frame=bytes_per_frame, compute=compute,
                        source_device=masks.device, chunk_size=chunk_size, halo=radius)
    return torch.cat(parts)


class TemporalStabilizer:
    """Streaming form of ``stabilize``: push frames one at a time, get stabilised masks back
    ``radius`` frames later; ``flush()`` returns the rest at the end of the clip.

    ``push(frame [H,W,3], mask [h,w] or [N,h,w])`` -> list of stabilised masks (float32, the
    mask's shape), in frame order. Holds at most ``2*radius+1`` frames."""

    def __init__(self, radius=2, color_sigma=0.05, time_sigma=None):
        self.radius, self.color_sigma, self.time_sigma = _check_params(radius, color_sigma, time_sigma)
        self._window = deque(maxlen=2 * self.radius + 1)  # (frame index, guide [3,h,w], mask [K,h,w])
        self._next_out = 0
        self._count = 0
        self._single = None

    def push(self, frame, mask):
        if mask.dim() not in (2, 3):
            raise ValueError(f"mask has shape {tuple(mask.shape)}: push one frame's mask [H,W] or [N,H,W]")
        if self._single is None:
            self._single = mask.dim() == 2
        m = (mask.unsqueeze(0) if mask.dim() == 2 else mask).float()
        guide = _guide(check_frames(frame, "frame")[:1].to(m.device))
        if tuple(guide.shape[-2:]) != tuple(m.shape[-2:]):
            check_aspect(tuple(m.shape[-2:]), tuple(guide.shape[-2:]), "mask")
            guide = F.interpolate(guide, size=tuple(m.shape[-2:]), mode="bilinear", align_corners=False,
                                  antialias=True)
        self._window.append((self._count, guide[0], m))
        self._count += 1
        ready = []
        while self._next_out + self.radius < self._count:
            ready.append(self._emit(self._next_out))
            self._next_out += 1
        return ready

    def flush(self):
        ready = []
        while self._next_out < self._count:
            ready.append(self._emit(self._next_out))
            self._next_out += 1
        return ready

    def _emit(self, t):
        center = next(g for i, g, _ in self._window if i == t)
        total, weight_sum = 0.0, 0.0
        for i, guide, m in self._window:
            if abs(i - t) > self.radius:
                continue
            w = _weight(center.unsqueeze(0), guide.unsqueeze(0), i - t, self.color_sigma, self.time_sigma)
            total = total + w * m
            weight_sum = weight_sum + w
        out = (total / weight_sum).clamp(0, 1)
        return out[0] if self._single else out
