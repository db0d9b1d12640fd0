"""Hand the masks on: coloured overlay, matte, background replacement, inpainting prep.

Every function takes frames as IMAGE ``[T,H,W,3]`` float 0..1 and masks in any layout
``ObjectMasks`` accepts (MASK ``[T,H,W]``, per-object ``[T,N,H,W]`` with ``object_ids``, or an
integer label map ``[T,H,W]``), plus ``ids``: the subset of object ids to use (``None``: all).
Masks at another size with the same aspect ratio (e.g. the network's internal size) are resized
bilinearly to the frames' size; a single mask frame is used for every frame. Results are at the
frames' resolution, float32. Frames go through in chunks bounded by a memory budget
(``chunking.run_chunked``): with ``compute=Compute(device=..., output_device=...)`` each chunk is
computed on ``device`` and handed back on ``output_device`` (default: both the frames' device);
``chunk_size`` (frames) overrides the budget.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..media_io.palette import object_colors
from .glyphs import render_number
from . import kernels
from .chunking import Compute, run_chunked
from .foreground import estimate_foreground_chunk, foreground_bytes
from .inputs import ObjectMasks, check_frames
from .refine import blur

FLOAT_BYTES = 4


def _prepare(frames, masks, object_ids):
    frames = check_frames(frames)
    objects = masks if isinstance(masks, ObjectMasks) else ObjectMasks(masks, object_ids)
    objects.check_frames_match(frames.shape[0], tuple(frames.shape[1:3]))
    return frames, objects


def _chunked(frames, objects, ids, work, per_pixel, compute, chunk_size, step="dilate", radius=0):
    """``run_chunked`` over the frames with a working set per source pixel of a frame of: the
    frames in and the result out (RGBA), the selected masks, ``per_pixel`` float planes of the
    op's own, and a morphology kernel's bytes when ``radius`` > 0."""
    compute = compute or Compute()
    device, _ = compute.on(frames.device)
    n = len(objects.select(ids))
    planes = 3 + 4 + n + per_pixel
    extra = kernels.bytes_per_pixel(step, device, radius) if radius > 0 else 0
    pixels = frames.shape[1] * frames.shape[2]
    return run_chunked(frames.shape[0], work, bytes_per_frame=pixels * (FLOAT_BYTES * planes + extra),
                       compute=compute, source_device=frames.device, chunk_size=chunk_size)


def mask_to_image(mask):
    """MASK ``[T,H,W]`` 0..1 -> IMAGE ``[T,H,W,3]`` (grey, white = 1)."""
    return mask.float().unsqueeze(-1).expand(*mask.shape, 3).contiguous()


def overlay(frames, masks, object_ids=None, ids=None, opacity=0.5, outline_px=2, draw_ids=False,
            label_scale=None, colors=None, chunk_size=None, compute=None):
    """Preview: each object tinted with its palette colour, outlined, optionally numbered.

    opacity: tint strength 0..1 (scaled by the soft mask). outline_px: width of an opaque line
    just inside each object's edge (``mask >= 0.5``; 0 for none). draw_ids: write the object id
    (built-in 3x5 digit font, ``label_scale`` pixels per font pixel, default about H/240, white
    on black) at the object's centroid. colors: ``{id: (r, g, b)}`` in 0..1 overriding the DAVIS palette.
    Later objects are drawn over earlier ones. Returns IMAGE ``[T,H,W,3]`` float32 0..1."""
    frames, objects = _prepare(frames, masks, object_ids)
    if not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity is {opacity}: give a value in 0..1")
    ids = objects.select(ids)
    palette_cpu = object_colors(ids, "cpu", colors)
    size = tuple(frames.shape[1:3])

    def work(t0, t1, device):
        image = frames[t0:t1].to(device, torch.float32, copy=True)
        m = objects.chunk(t0, t1, ids, size, device)
        palette = palette_cpu.to(device)
        for k in range(len(ids)):
            a = (float(opacity) * m[:, k]).unsqueeze(-1)
            image = torch.lerp(image, palette[k].expand_as(image), a)
            if outline_px > 0:
                inside = (m[:, k] >= 0.5).float()
                edge = (inside - kernels.disc_erode(inside, int(outline_px))) > 0.5
                image = torch.where(edge.unsqueeze(-1), palette[k], image)
        if draw_ids:
            scale = label_scale if label_scale is not None else max(2, round(size[0] / 240))
            _draw_labels(image, m >= 0.5, ids, scale)
        return image.clamp(0, 1)
    return torch.cat(_chunked(frames, objects, ids, work, 6, compute, chunk_size, radius=int(outline_px)))


def _draw_labels(image, present, ids, scale):
    """Write each object's id at its centroid, in place (``present`` bool ``[t,n,H,W]``)."""
    t, n, h, w = present.shape
    ys = torch.arange(h, device=image.device, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, device=image.device, dtype=torch.float32).view(1, 1, 1, w)
    area = present.sum((-2, -1)).float()
    cy = ((present * ys).sum((-2, -1)) / area.clamp(min=1)).tolist()
    cx = ((present * xs).sum((-2, -1)) / area.clamp(min=1)).tolist()
    area = area.tolist()
    glyphs = {i: render_number(i, scale, image.device) for i in ids}
    pad = max(1, int(scale))
    for f in range(t):
        for k, object_id in enumerate(ids):
            if area[f][k] == 0:
                continue
            glyph = glyphs[object_id]
            gh, gw = glyph.shape[0] + 2 * pad, glyph.shape[1] + 2 * pad
            if gh > h or gw > w:
                continue
            y0 = min(max(int(round(cy[f][k])) - gh // 2, 0), h - gh)
            x0 = min(max(int(round(cx[f][k])) - gw // 2, 0), w - gw)
            box = torch.zeros(gh, gw, dtype=torch.bool, device=image.device)
            box[pad:pad + glyph.shape[0], pad:pad + glyph.shape[1]] = glyph
            image[f, y0:y0 + gh, x0:x0 + gw] = box.float().unsqueeze(-1).expand(gh, gw, 3)


def _clean(rgb, alpha):
    """The objects' own colour at soft edges (``foreground.estimate_foreground_chunk``):
    ``rgb [t,H,W,3]``, ``alpha [t,H,W,1]``."""
    fg, _ = estimate_foreground_chunk(rgb.permute(0, 3, 1, 2), alpha.permute(0, 3, 1, 2))
    return fg.permute(0, 2, 3, 1)


def matte(frames, masks, object_ids=None, ids=None, mode="rgba", chunk_size=None, compute=None,
          clean_edges=False):
    """Cut the selected objects out (alpha = union of their masks, 1 = object, opaque).

    mode ``"rgba"``: IMAGE ``[T,H,W,4]`` with straight (unpremultiplied) colour and the alpha in
    channel 3; ``"on_black"``: IMAGE ``[T,H,W,3]`` = frames * alpha. Float32 0..1.
    ``clean_edges``: the colour at soft edges is the objects' own, estimated without the
    background's tint (``foreground``). (ComfyUI's MASK is already alpha-polarity here: pass it
    as is; core ``JoinImageWithAlpha`` would invert it.)"""
    frames, objects = _prepare(frames, masks, object_ids)
    if mode not in ("rgba", "on_black"):
        raise ValueError(f"matte mode {mode!r} is unknown: use 'rgba' or 'on_black'")
    size = tuple(frames.shape[1:3])

    def work(t0, t1, device):
        rgb = frames[t0:t1].to(device).float()
        alpha = objects.union(t0, t1, ids, size, device).unsqueeze(-1)
        rgb = _clean(rgb, alpha) if clean_edges else rgb
        return torch.cat([rgb, alpha], -1) if mode == "rgba" else rgb * alpha
    extra = foreground_bytes() // FLOAT_BYTES if clean_edges else 0
    return torch.cat(_chunked(frames, objects, ids, work, 1 + extra, compute, chunk_size))


def _parse_color(color):
    if isinstance(color, str):
        text = color.strip().lstrip("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError(f"background colour {color!r} is not a hex colour like '#00ff00'")
        return [int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]
    rgb = [float(c) for c in color]
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ValueError(f"background colour {color!r}: give (r, g, b) with components in 0..1")
    return rgb


def replace_background(frames, masks, background, object_ids=None, ids=None, chunk_size=None, compute=None,
                       clean_edges=False):
    """Keep the selected objects, put ``background`` behind them: ``frame*m + background*(1-m)``,
    or with ``clean_edges`` ``F*m + background*(1-m)``, F the objects' own colour estimated at
    soft edges (``foreground``), so the old background does not tint the new one's edges.

    background: a colour (``(r, g, b)`` in 0..1 or ``'#rrggbb'``), or IMAGE ``[1,h,w,3]`` (one
    image for every frame) or ``[T,h,w,3]`` (a video), stretched bilinearly to the frames' size.
    Returns IMAGE ``[T,H,W,3]`` float32 0..1."""
    frames, objects = _prepare(frames, masks, object_ids)
    num_frames, size = frames.shape[0], tuple(frames.shape[1:3])
    if torch.is_tensor(background):
        background = check_frames(background, "background")
        if background.shape[0] not in (1, num_frames):
            raise ValueError(f"background has {background.shape[0]} frames but the frames have {num_frames}: "
                             "give one image or a video of the same length")
        color = None
    else:
        color = torch.tensor(_parse_color(background))

    def work(t0, t1, device):
        rgb = frames[t0:t1].to(device).float()
        m = objects.union(t0, t1, ids, size, device).unsqueeze(-1)
        if color is not None:
            back = color.to(device)
        else:
            part = background[:1] if background.shape[0] == 1 else background[t0:t1]
            back = part.to(device).float().permute(0, 3, 1, 2)
            if tuple(back.shape[-2:]) != size:
                back = F.interpolate(back, size=size, mode="bilinear", align_corners=False,
                                     antialias=back.shape[-2] > size[0]).clamp(0, 1)
            back = back.permute(0, 2, 3, 1)
        rgb = _clean(rgb, m) if clean_edges else rgb
        return rgb * m + back * (1 - m)
    extra = foreground_bytes() // FLOAT_BYTES if clean_edges else 0
    return torch.cat(_chunked(frames, objects, ids, work, 7 + extra, compute, chunk_size))


@dataclass
class InpaintPrep:
    """Result of ``inpaint_prep``. ``mask`` MASK ``[T,H,W]`` 0..1 (1 = fill), ``mask_image`` IMAGE
    ``[T,H,W,3]`` (white = fill). With cropping: ``box`` = (x, y, w, h) in pixels and the frames,
    mask and mask image cut to it; without, those are ``None``."""
    mask: torch.Tensor
    mask_image: torch.Tensor
    box: Optional[Tuple[int, int, int, int]] = None
    frames_cropped: Optional[torch.Tensor] = None
    mask_cropped: Optional[torch.Tensor] = None
    mask_image_cropped: Optional[torch.Tensor] = None


def inpaint_prep(frames, masks, object_ids=None, ids=None, grow_px=8, feather_px=4, level=0.5,
                 crop=False, crop_margin_px=32, crop_multiple=8, chunk_size=None, compute=None):
    """Inpainting mask for the selected objects: union >= ``level``, grown by a disc of
    ``grow_px``, feathered over ``feather_px`` (Gaussian, sigma = feather/3), and never below
    1 on the object itself. With ``crop``: the box around the mask over the whole shot (union of
    every frame's mask > 0) plus ``crop_margin_px``, widened to a multiple of ``crop_multiple``
    where the frame allows, clamped to the frame; an empty mask crops to the whole frame.
    Returns ``InpaintPrep`` (see there for shapes); float32 on the output device."""
    frames, objects = _prepare(frames, masks, object_ids)
    if grow_px < 0 or feather_px < 0:
        raise ValueError(f"grow_px {grow_px} / feather_px {feather_px}: give values >= 0 (shrink the masks "
                         "with refine.grow_shrink first if you need to)")
    h, w = frames.shape[1:3]

    def work(t0, t1, device):
        hard = (objects.union(t0, t1, ids, (h, w), device) >= level).float()
        m = kernels.disc_dilate(hard, int(grow_px))
        if feather_px > 0:
            m = torch.maximum(blur(m.unsqueeze(1), float(feather_px))[:, 0].clamp(0, 1), hard)
        nonzero = m > 0
        return m, nonzero.any(0).any(1), nonzero.any(0).any(0)
    parts = _chunked(frames, objects, ids, work, 10, compute, chunk_size, radius=int(grow_px))
    mask = torch.cat([p[0] for p in parts])
    result = InpaintPrep(mask=mask, mask_image=mask_to_image(mask))
    if crop:
        rows_any = torch.stack([p[1] for p in parts]).any(0)
        cols_any = torch.stack([p[2] for p in parts]).any(0)
        box = _crop_box(rows_any, cols_any, int(crop_margin_px), max(1, int(crop_multiple)))
        x, y, bw, bh = box
        result.box = box
        result.frames_cropped = frames[:, y:y + bh, x:x + bw].to(mask.device).float()
        result.mask_cropped = mask[:, y:y + bh, x:x + bw]
        result.mask_image_cropped = result.mask_image[:, y:y + bh, x:x + bw]
    return result


def _crop_box(rows_any, cols_any, margin, multiple):
    h, w = rows_any.numel(), cols_any.numel()
    if not bool(rows_any.any()):
        return (0, 0, w, h)
    ys, xs = torch.nonzero(rows_any)[:, 0], torch.nonzero(cols_any)[:, 0]
    y0, y1 = int(ys.min()) - margin, int(ys.max()) + 1 + margin
    x0, x1 = int(xs.min()) - margin, int(xs.max()) + 1 + margin
    x0, x1 = _fit_span(x0, x1, w, multiple)
    y0, y1 = _fit_span(y0, y1, h, multiple)
    return (x0, y0, x1 - x0, y1 - y0)


def _fit_span(lo, hi, limit, multiple):
    """Clamp [lo, hi) to [0, limit), then widen to a multiple (growing on both sides, shifting
    inside the frame) when the frame is wide enough."""
    lo, hi = max(lo, 0), min(hi, limit)
    want = -(-(hi - lo) // multiple) * multiple
    if want <= limit:
        extra = want - (hi - lo)
        lo -= extra // 2
        hi = lo + want
        if lo < 0:
            lo, hi = 0, want
        if hi > limit:
            lo, hi = limit - want, limit
    return lo, hi
