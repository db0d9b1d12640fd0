"""Refine Matte controls a compositor expects on an alpha, in pixels at the mattes' size:
contrast, shift edge (choke when negative), reduce chatter (temporal smoothing of the edge
only) and motion blur along the picture's optical flow. Feathering is ``refine.feather``.

Each function takes per-object mattes ``[t,N,H,W]`` float32 (and, for the temporal ones, the
frames ``[t,H,W,3]`` at the same size) on one device and returns the same layout there;
``refine_chain.RefineSteps`` runs them on each chunk of a long shot.
"""
import math

import torch
import torch.nn.functional as F

from . import kernels
from .refine import _grow_shrink, box_mean
from .temporal import _guide, _weight

EDGE_BAND_PX = 2  # reduce chatter works on the pixels this close to an edge (and on soft ones)
FLOW_WINDOW = 7   # Lucas-Kanade window radius (pixels of a pyramid level)
MAX_BLUR_SAMPLES = 32
FLOW_SIDE = 640   # motion blur measures the flow at most this large (the longer side), then scales it up


# ------------------------------------------------------------------ per frame
def contrast(planes, amount):
    """Steeper transitions: ``amount`` 0 keeps the matte, 1 makes it hard at 0.5; between, the
    slope through 0.5 is ``1 / (1 - amount)``."""
    amount = float(amount)
    if amount <= 0:
        return planes
    if amount >= 1:
        return (planes >= 0.5).float()
    return ((planes - 0.5) / (1.0 - amount) + 0.5).clamp(0, 1)


def shift_edge(planes, pixels):
    """Move every edge outwards (``pixels`` > 0) or inwards (choke, < 0) by a fraction of a pixel
    or more: grey-level dilation / erosion by discs of the whole pixels either side, blended."""
    pixels = float(pixels)
    if pixels == 0:
        return planes
    sign, size = (1 if pixels > 0 else -1), abs(pixels)
    whole, fraction = int(math.floor(size)), size - math.floor(size)
    inner = _grow_shrink(planes, sign * whole)
    if fraction < 1e-6:
        return inner
    return torch.lerp(inner, _grow_shrink(planes, sign * (whole + 1)), fraction)


# ------------------------------------------------------------------ along time
def edge_band(planes, band_px=EDGE_BAND_PX):
    """1 on pixels of ``[B,H,W]`` within ``band_px`` of an edge of the matte or soft (0..1)."""
    soft = ((planes > 1e-3) & (planes < 1 - 1e-3)).float()
    spread = kernels.disc_dilate(planes, band_px) - kernels.disc_erode(planes, band_px)
    return torch.maximum(kernels.disc_dilate(soft, band_px), (spread > 1e-3).float())


def reduce_chatter(part, frames, radius, strength, color_sigma=0.05):
    """Edges that jitter from frame to frame held steady: at the pixels near an edge the matte is
    blended (by ``strength`` 0..1) towards its mean over ``radius`` frames each side, weighted
    by how little the picture changed there (the weights of ``temporal.stabilize``: a moving
    edge is left where it is). Pixels away from every edge are never touched."""
    radius, strength = int(radius), float(strength)
    if radius <= 0 or strength <= 0:
        return part
    guide = _guide(frames)
    if tuple(guide.shape[-2:]) != tuple(part.shape[-2:]):
        guide = F.interpolate(guide, size=tuple(part.shape[-2:]), mode="bilinear", align_corners=False)
    count = part.shape[0]
    out = torch.empty_like(part)
    for t in range(count):
        total, weight_sum = torch.zeros_like(part[t]), torch.zeros_like(part[t, :1])
        for s in range(max(0, t - radius), min(count, t + radius + 1)):
            w = _weight(guide[t:t + 1], guide[s:s + 1], s - t, color_sigma, max(radius, 1))
            total += w * part[s]
            weight_sum += w
        band = edge_band(part[t]) * strength
        out[t] = torch.lerp(part[t], total / weight_sum, band)
    return out


def _grey(frames):
    return (frames.float() * torch.tensor([0.299, 0.587, 0.114], device=frames.device)).sum(-1, keepdim=True) \
        .permute(0, 3, 1, 2)


def _warp(image, flow):
    """``image [B,C,H,W]`` sampled at ``x + flow(x)`` (bilinear, borders clamped)."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(image, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def _lucas_kanade(a, b, iterations=3):
    """Coarse-to-fine Lucas-Kanade flow ``[B,2,H,W]`` with ``a(x) ~ b(x + flow(x))`` (grey
    ``[B,1,H,W]``), in torch for any device."""
    pyramid = [(a, b)]
    while min(pyramid[-1][0].shape[-2:]) >= 64:
        pyramid.append(tuple(F.avg_pool2d(x, 2) for x in pyramid[-1]))
    flow = None
    for level_a, level_b in reversed(pyramid):
        if flow is None:
            flow = level_a.new_zeros(level_a.shape[0], 2, *level_a.shape[-2:])
        else:
            flow = 2.0 * F.interpolate(flow, size=level_a.shape[-2:], mode="bilinear", align_corners=False)
        gy, gx = torch.gradient(level_a, dim=(-2, -1))
        sxx, sxy, syy = (box_mean(p, FLOW_WINDOW) for p in (gx * gx, gx * gy, gy * gy))
        det = sxx * syy - sxy * sxy + 1e-6
        for _ in range(iterations):
            dt = _warp(level_b, flow) - level_a
            sxt, syt = box_mean(gx * dt, FLOW_WINDOW), box_mean(gy * dt, FLOW_WINDOW)
            flow = flow - torch.cat([syy * sxt - sxy * syt, sxx * syt - sxy * sxt], 1) / det
    return flow


def _dis(a, b):
    import cv2
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    flows = []
    for x, y in zip(a, b):
        grey = [(p[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy() for p in (x, y)]
        flows.append(torch.from_numpy(dis.calc(grey[0], grey[1], None)).permute(2, 0, 1))
    return torch.stack(flows)


def optical_flow(frames_a, frames_b, method="auto"):
    """Flow ``[B,2,H,W]`` (x, y pixels) from each of ``frames_a`` to ``frames_b`` (``[B,H,W,3]``):
    OpenCV's DIS on the CPU when OpenCV is installed, else (and on GPUs) pyramidal Lucas-Kanade
    in torch. ``method``: ``auto``, ``dis`` or ``torch``."""
    a, b = _grey(frames_a), _grey(frames_b)
    if method == "auto":
        method = "dis" if a.device.type == "cpu" and kernels._library("opencv") is not None else "torch"
    if method == "dis":
        return _dis(a, b).to(a.device)
    if method != "torch":
        raise ValueError(f"optical flow method {method!r} is not one of auto, dis, torch")
    return _lucas_kanade(a, b)


def _object_velocity(plane, velocity, reach):
    """The velocity of the object around each pixel: the flow averaged under the matte over
    ``reach`` pixels (normalised convolution), so the background beside a moving edge moves with
    it and the matte can smear out there. ``plane [N,H,W]``, ``velocity [2,H,W]``."""
    weight = plane.unsqueeze(1)
    num = box_mean(weight * velocity.unsqueeze(0), reach)
    den = box_mean(weight, reach)
    return num / den.clamp_min(1e-4) * (den > 1e-4)


def motion_blur(part, frames, shutter, samples=0, method="auto"):
    """Motion-blurred mattes: each frame's matte averaged along the motion of its objects over
    ``shutter`` of a frame interval (0.5 = a 180-degree shutter), centred on the frame. The motion
    is the optical flow of the frames (mean of forward and backward where both exist).
    ``samples`` 0 picks enough for the longest smear (at most 32)."""
    shutter = float(shutter)
    if shutter <= 0 or part.shape[0] < 2:
        return part
    count, size = part.shape[0], tuple(part.shape[-2:])
    # A smear needs the motion, not its every detail: the flow is measured on smaller frames.
    scale = min(1.0, FLOW_SIDE / max(size))
    small = (max(8, round(size[0] * scale)), max(8, round(size[1] * scale)))
    if tuple(frames.shape[1:3]) != small:
        frames = F.interpolate(frames.float().permute(0, 3, 1, 2), size=small, mode="area").permute(0, 2, 3, 1)
    forward = optical_flow(frames[:-1], frames[1:], method)    # t -> t+1
    backward = optical_flow(frames[1:], frames[:-1], method)   # t+1 -> t
    if small != size:
        factor = torch.tensor([size[1] / small[1], size[0] / small[0]], device=part.device).view(1, 2, 1, 1)
        forward, backward = (F.interpolate(f, size=size, mode="bilinear", align_corners=False) * factor
                             for f in (forward, backward))
    out = torch.empty_like(part)
    for t in range(count):
        moves = ([forward[t]] if t < count - 1 else []) + ([-backward[t - 1]] if t > 0 else [])
        velocity = sum(moves) / len(moves)
        longest = float(velocity.norm(dim=0).amax()) * shutter
        if longest < 0.25:
            out[t] = part[t]
            continue
        velocity = _object_velocity(part[t], velocity, max(1, int(math.ceil(longest))))
        n = int(samples) or min(MAX_BLUR_SAMPLES, max(2, int(math.ceil(longest * 2))))
        total = torch.zeros_like(part[t])
        for s in torch.linspace(-shutter / 2, shutter / 2, n).tolist():
            total += _warp(part[t].unsqueeze(1), -s * velocity)[:, 0]
        out[t] = total / n
    return out


def matte_preview_size(frame_hw, max_side=320):
    """``(h, w)`` of :func:`matte_preview`'s pictures for frames of ``frame_hw``."""
    height, width = frame_hw
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def matte_preview(frames, alpha, max_side=320, square=8):
    """What the player shows of a matte: the frames over a grey checkerboard through ``alpha``
    (``[t,H,W]``; the matte as grey without frames), shrunk so the longer side is at most
    ``max_side``: uint8 ``[t,h,w,3]``."""
    size = matte_preview_size(alpha.shape[-2:], max_side)
    a = F.interpolate(alpha.float().unsqueeze(1), size=size, mode="area")
    if frames is None:
        image = a.expand(-1, 3, -1, -1)
    else:
        rgb = F.interpolate(frames.float().permute(0, 3, 1, 2), size=size, mode="area")
        ys, xs = torch.meshgrid(torch.arange(size[0], device=a.device), torch.arange(size[1], device=a.device),
                                indexing="ij")
        checker = 0.4 + 0.2 * (((ys // square) + (xs // square)) % 2).float()
        image = rgb * a + checker * (1 - a)
    return (image.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8)


__all__ = ["contrast", "matte_preview", "matte_preview_size", "edge_band", "motion_blur", "optical_flow", "reduce_chatter", "shift_edge"]
