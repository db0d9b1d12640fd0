"""The Refine chain: temporal smoothing, threshold, fill holes, remove islands, grow/shrink,
edge refinement and feather, then the Refine Matte controls (contrast, shift edge, reduce
chatter, motion blur; ``matte_edges``), run together on each chunk of frames, so a chunk
crosses to the compute device once and comes back once.
"""
from dataclasses import dataclass

import torch

from . import matte_edges, refine
from .chunking import Compute, num_frames_of, read_chunk, run_chunked
from .inputs import check_aspect
from .temporal import stabilize, stabilize_bytes


@dataclass(frozen=True)
class RefineSteps:
    """Which steps run and how; every step is off at its default. ``max_hole_px`` 0: any size."""
    temporal_radius: int = 0
    temporal_color_sigma: float = 0.05
    binarize: bool = False
    threshold: float = 0.5
    fill_holes: bool = False
    max_hole_px: int = 0
    remove_islands_px: int = 0
    grow_px: int = 0
    edge_radius: int = 0
    edge_eps: float = 1e-3
    feather_px: float = 0.0
    contrast: float = 0.0
    shift_edge_px: float = 0.0
    chatter_strength: float = 0.0
    chatter_radius: int = 2
    motion_blur: float = 0.0
    motion_blur_samples: int = 0

    def __post_init__(self):
        if int(self.temporal_radius) < 0:
            raise ValueError(f"temporal_radius is {self.temporal_radius}: give frames on each side (>= 0)")
        refine._check_level(self.threshold)
        refine._check_min_size(self.remove_islands_px)
        refine._check_feather(self.feather_px)
        if int(self.edge_radius) > 0:
            refine._check_guided(self.edge_radius, self.edge_eps)
        for name, low, high in (("contrast", 0.0, 1.0), ("chatter_strength", 0.0, 1.0), ("motion_blur", 0.0, 4.0)):
            if not low <= float(getattr(self, name)) <= high:
                raise ValueError(f"{name} is {getattr(self, name)}: give a value in {low:g}..{high:g}")
        if int(self.chatter_radius) < 1:
            raise ValueError(f"chatter_radius is {self.chatter_radius}: give frames on each side (>= 1)")
        if int(self.motion_blur_samples) < 0:
            raise ValueError(f"motion_blur_samples is {self.motion_blur_samples}: give 0 (automatic) or more")

    @property
    def chatter_halo(self):
        return int(self.chatter_radius) if float(self.chatter_strength) > 0 else 0

    @property
    def blur_halo(self):
        return 1 if float(self.motion_blur) > 0 else 0

    @property
    def halo(self):
        """Frames each side a chunk needs: the temporal steps' windows one after another."""
        return int(self.temporal_radius) + self.chatter_halo + self.blur_halo

    @property
    def needs_frames(self):
        return int(self.temporal_radius) > 0 or int(self.edge_radius) > 0 or self.chatter_halo > 0 \
            or self.blur_halo > 0

    def bytes_per_pixel(self, device, objects):
        """Working bytes per source pixel of one frame with ``objects`` planes: the costliest step."""
        per_plane = [refine._step_bytes("threshold", device)]
        if self.fill_holes:
            per_plane.append(refine._step_bytes("holes", device))
        if int(self.remove_islands_px) > 0:
            per_plane.append(refine._step_bytes("islands", device))
        if int(self.grow_px) != 0:
            per_plane.append(refine._step_bytes("dilate", device, abs(int(self.grow_px))))
        if float(self.feather_px) > 0:
            per_plane.append(refine._step_bytes("feather", device))
        # the chunk as read and its stabilised copy stay alive beside the costliest step
        total = objects * (max(per_plane) + 4 * 4)
        if int(self.temporal_radius) > 0:
            total = max(total, stabilize_bytes(objects))
        if int(self.edge_radius) > 0:
            total = max(total, refine._guided_bytes(objects))
        if self.blur_halo:  # two flows, the object velocities and the running sum
            total = max(total, 4 * (4 + 4 * objects + 2 * objects))
        return total

    def run(self, part, guide=None, halo=(0, 0)):
        """Refine ``part [t,N,H,W]`` float32 (``halo`` extra frames before/after it, for the
        temporal windows; ``guide`` the matching frames ``[t,H,W,3]``), all on one device.
        Returns ``[t - sum(halo), N, H, W]``."""
        radius = int(self.temporal_radius)
        if radius > 0:
            part = stabilize(guide, part, radius=radius, color_sigma=float(self.temporal_color_sigma),
                             chunk_size=part.shape[0])
        later = self.chatter_halo + self.blur_halo  # frames the later temporal steps still need
        cut = (max(0, halo[0] - later), max(0, halo[1] - later))
        part = part[cut[0]:part.shape[0] - cut[1]]
        guide = guide[cut[0]:guide.shape[0] - cut[1]] if guide is not None else None
        halo = (halo[0] - cut[0], halo[1] - cut[1])
        shape = part.shape
        planes = part.reshape(-1, *shape[-2:])
        if self.binarize:
            planes = refine._threshold(planes, float(self.threshold))
        if self.fill_holes:
            planes = refine._fill_holes(planes, int(self.max_hole_px) or None)
        if int(self.remove_islands_px) > 0:
            planes = refine._remove_islands(planes, int(self.remove_islands_px), 8)
        planes = refine._grow_shrink(planes, int(self.grow_px))
        part = planes.reshape(shape)
        if int(self.edge_radius) > 0:
            part = refine._refine_edges_chunk(guide, part, int(self.edge_radius), float(self.edge_eps))
        if float(self.feather_px) > 0:
            part = refine._feather(part.reshape(-1, *shape[-2:]), float(self.feather_px)).reshape(part.shape)
        planes = matte_edges.contrast(part.reshape(-1, *shape[-2:]), self.contrast)
        part = matte_edges.shift_edge(planes, self.shift_edge_px).reshape(shape)
        part = matte_edges.reduce_chatter(part, guide, self.chatter_halo, self.chatter_strength,
                                          float(self.temporal_color_sigma))
        part = matte_edges.motion_blur(part, guide, self.motion_blur, self.motion_blur_samples)
        return part[halo[0]:part.shape[0] - halo[1]]


def refine_masks(masks, steps, frames=None, compute=None, out_dtype=torch.float32, sink=None):
    """Run ``steps`` (a ``RefineSteps``) over per-object masks ``[T,N,H,W]`` float 0..1.

    masks and frames may be tensors or lazy sources (``num_frames`` and ``chunk(t0, t1)``, e.g.
    the masks of a propagation materialised on demand); frames (IMAGE ``[T,H,W,3]``) are needed
    for temporal smoothing and edge refinement. Each budget-sized chunk (plus the temporal
    window's frames on both sides) is read, moved to the compute device, refined there and
    handed back on the output device as ``out_dtype``. Returns ``[T,N,H,W]``; with ``sink``, each
    chunk goes to ``sink(t0, part)`` instead as soon as it is done, and None is returned (a long
    shot's refined masks never held at once)."""
    num_frames = num_frames_of(masks)
    if steps.needs_frames:
        if frames is None:
            raise ValueError("frames are needed for temporal smoothing and edge refinement: connect the frames "
                             "the masks belong to, or turn both off")
        if num_frames_of(frames) != num_frames:
            raise ValueError(f"frames has {num_frames_of(frames)} frames but the masks cover {num_frames}: "
                             "connect the frames the masks belong to")
    first = read_chunk(masks, 0, 1)
    if first.dim() != 4:
        raise ValueError(f"masks chunk has shape {tuple(first.shape)}: expected per-object masks [T,N,H,W]")
    objects, size = first.shape[1], tuple(first.shape[-2:])
    if steps.needs_frames:
        check_aspect(size, tuple(read_chunk(frames, 0, 1).shape[1:3]), "masks")
    compute = compute or Compute()
    device, _ = compute.on(first.device)
    radius = steps.halo
    bytes_per_frame = size[0] * size[1] * steps.bytes_per_pixel(device, objects)
    if steps.needs_frames:
        bytes_per_frame += size[0] * size[1] * 3 * refine.FLOAT_BYTES

    def work(t0, t1, dev):
        lo, hi = max(0, t0 - radius), min(num_frames, t1 + radius)
        part = read_chunk(masks, lo, hi).to(dev).float()
        guide = read_chunk(frames, lo, hi).to(dev) if steps.needs_frames else None
        out = steps.run(part, guide, (t0 - lo, hi - t1)).to(out_dtype)
        if sink is None:
            return out
        sink(t0, out)
        return None
    parts = run_chunked(num_frames, work, bytes_per_frame=bytes_per_frame, compute=compute,
                        source_device=first.device, halo=radius)
    return None if sink is not None else torch.cat(parts)
