"""MEMVOS_MASKS: the per-object masks of a run of clip frames, as they travel between our nodes.

Straight out of Propagate the masks stay compact inside the core's PropagationResult (internal
resolution) and are materialised at source size a chunk of frames at a time; after Refine they
are float16 frames at source size in a store on disk (:class:`StoredMasks`), read back a chunk
at a time, so neither grows RAM with the shot. A MaskSet is never written after it is made.
"""
from dataclasses import dataclass, replace
from typing import Optional

import torch

from . import comfy_env
from .common import CHUNK_FRAMES
from .messages import size_text
from ..memvos_core.runtime.frames import internal_size
from ..memvos_core.ops.chunking import concat_as_made, frame_chunks
from ..memvos_core.ops.inputs import resize_masks


@dataclass(frozen=True, eq=False)
class MaskSet:
    object_ids: tuple
    clip_start: int             # clip index of the first mask
    num_frames: int
    frame_hw: tuple             # source (height, width)
    frames_first_index: int     # clip index of frames[0] of the batch the masks were made from
    frames_count: int           # length of that batch
    keyframes: tuple = ()       # ({"frame": clip index, "objects": [ids]}, ...)
    model_id: str = ""
    dense: Optional[torch.Tensor] = None  # float16 [T,N,H,W]
    result: Optional[object] = None       # core PropagationResult over clip_start..
    stored: Optional[object] = None       # StoredMasks of these frames (Refine's output)
    stems: tuple = ()                     # a name per mask frame (the frames' file stems), for files
    fps: Optional[float] = None           # the frames' rate when they carried one (VIDEO, MEMVOS_FRAMES)

    @property
    def clip_end(self):
        return self.clip_start + self.num_frames - 1

    def describe(self):
        return (f"objects {list(self.object_ids)} on clip frames {self.clip_start}..{self.clip_end} "
                f"({size_text(self.frame_hw)})")

    def chunks(self, size=CHUNK_FRAMES):
        return frame_chunks(self.num_frames, size)

    def select(self, ids=None, name="object_ids"):
        """The chosen object ids (all when None), each checked to be among ours."""
        if ids is None:
            return list(self.object_ids)
        unknown = [i for i in ids if i not in self.object_ids]
        if unknown:
            raise ValueError(f"{name}: object(s) {unknown} are not in these masks (objects "
                             f"{list(self.object_ids)}): pick among those, or leave it empty for all")
        return list(ids)

    def chunk(self, t0, t1, ids=None):
        """float32 ``[t1-t0, n, H, W]`` soft masks (1 = object) at source size."""
        ids = self.select(ids)
        if self.dense is not None:
            cols = [self.object_ids.index(i) for i in ids]
            return self.dense[t0:t1, cols].float()
        if self.stored is not None:
            return self.stored.chunk(t0, t1, ids)
        return concat_as_made((self.result.probabilities(self.clip_start + t, ids)[None, 1:] for t in range(t0, t1)),
                              t1 - t0)

    def union(self, t0, t1, ids=None):
        """float32 ``[t, H, W]``: per pixel the largest mask of the chosen objects."""
        return union_of(self.chunk(t0, t1, ids))

    def labels(self, t0, t1, ids=None):
        """uint8 ``[t, H, W]`` label maps of the chosen objects (0 = background)."""
        ids = self.select(ids)
        return labels_of(self.chunk(t0, t1, ids), ids)

    def frame_stem(self, t):
        """The file name stem of mask frame ``t`` (the clip index, 5 digits, if none was recorded)."""
        return self.stems[t] if len(self.stems) == self.num_frames else f"{self.clip_start + t:05d}"

    def label_view(self, ids=None):
        """The label maps of every frame as a read-only view that slices like a uint8
        ``[T,H,W]`` tensor, built a slice at a time (for the preview of a long shot)."""
        return _LabelView(self, self.select(ids))

    def subset(self, ids):
        """The same frames with only the chosen objects (in the order given)."""
        ids = self.select(ids)
        if self.dense is not None:
            return self.with_masks(self.dense[:, [self.object_ids.index(i) for i in ids]], ids)
        kfs = tuple({"frame": k["frame"], "objects": [o for o in k["objects"] if o in ids]}
                    for k in self.keyframes)
        return replace(self, object_ids=tuple(ids), keyframes=kfs)

    def materialise(self, ids=None, short_side=None):
        """float16 ``[T, n, H, W]`` of the chosen objects, built a chunk at a time; with
        ``short_side``, shrunk so the shorter side is at most that (for analysis, not output)."""
        size = None
        if short_side is not None and short_side > 0 and min(self.frame_hw) > short_side:
            size = internal_size(*self.frame_hw, short_side)
        parts = []
        for t0, t1 in self.chunks():
            part = self.chunk(t0, t1, ids)
            parts.append((resize_masks(part, size) if size else part).half())
        return torch.cat(parts)

    def with_masks(self, dense, ids=None):
        """A new MaskSet over the same frames holding ``dense`` ``[T, n, H, W]``."""
        ids = tuple(self.object_ids if ids is None else ids)
        if dense.dim() != 4 or dense.shape[0] != self.num_frames or dense.shape[1] != len(ids):
            raise ValueError(f"internal: masks {tuple(dense.shape)} do not fit {self.num_frames} frames "
                             f"of objects {list(ids)}")
        kfs = tuple({"frame": k["frame"], "objects": [o for o in k["objects"] if o in ids]}
                    for k in self.keyframes)
        return replace(self, object_ids=ids, dense=dense.half(), result=None, stored=None, keyframes=kfs)

    def with_stored(self, stored):
        """A new MaskSet over the same frames reading ``stored`` (a :class:`StoredMasks`)."""
        ids = tuple(stored.object_ids)
        kfs = tuple({"frame": k["frame"], "objects": [o for o in k["objects"] if o in ids]}
                    for k in self.keyframes)
        return replace(self, object_ids=ids, dense=None, result=None, stored=stored, keyframes=kfs)

    def aligned_frames(self, frames, name="frames"):
        """The frames these masks belong to: ``frames`` itself when the counts agree, or the
        matching slice of the batch the masks were propagated over."""
        count, size = frames.shape[0], tuple(frames.shape[1:3])
        if size != tuple(self.frame_hw):
            raise ValueError(f"{name} are {size_text(size)} but the masks ({self.describe()}) were made "
                             "on frames of another size: connect the frames the masks were propagated over")
        if count == self.num_frames:
            return frames
        if count == self.frames_count:
            offset = self.clip_start - self.frames_first_index
            if hasattr(frames, "window"):  # a FrameClip: a view, nothing decoded
                return frames.window(offset, self.num_frames)
            return frames[offset:offset + self.num_frames]
        raise ValueError(f"{name} has {count} frames but the masks cover {self.num_frames} "
                         f"({self.describe()}, propagated over a batch of {self.frames_count}): connect "
                         "the same frames that went into Propagate")


class StoredMasks:
    """Float16 per-object masks at source size, a frame per file in a temporary ResultStore
    (zlib-compressed, bit for bit what was put); the store's folder goes with the last holder.
    Filled with :meth:`put` a chunk at a time, then only read."""

    AREA = "masks"

    def __init__(self, store, object_ids):
        self.store, self.object_ids = store, tuple(object_ids)

    def put(self, t0, part):
        """Mask frames ``t0..`` from ``part`` ``[t, n, H, W]`` (any float dtype)."""
        from ..memvos_core.session import StoredFrame
        bits = part.detach().to("cpu", torch.float16).contiguous().view(torch.uint16)
        for k in range(bits.shape[0]):
            self.store.put(self.AREA, t0 + k, StoredFrame(bits[k].clone(), self.object_ids))

    def chunk(self, t0, t1, ids):
        cols = [self.object_ids.index(i) for i in ids]
        return concat_as_made((self._planes(t, cols)[None] for t in range(t0, t1)), t1 - t0, torch.float32)

    def _planes(self, t, cols):
        entry = self.store.get(self.AREA, t)
        if entry is None or entry.planes is None:
            raise ValueError(f"frame {t} of the refined masks is missing from {self.store.folder}: run "
                             "MemVOS Refine Masks again")
        return entry.planes.view(torch.float16)[cols]


def union_of(part):
    """``[t, n, H, W]`` -> ``[t, H, W]``: per pixel the largest of the n masks (0 when n is 0)."""
    return part.amax(1) if part.shape[1] else part.new_zeros(part.shape[0], *part.shape[2:])


def labels_of(part, ids):
    """``[t, n, H, W]`` soft masks of objects ``ids`` -> uint8 label maps (0 where the background
    outweighs every object)."""
    # The argmax over [background, objects...] kept as a running best, one plane at a time: a
    # concatenated copy and int64 indices took 9 times the labels' own bytes over the whole chunk.
    # As argmax: the first of equal values wins, and so does a NaN.
    best = part.sum(1).neg_().add_(1).clamp_(min=0)  # 1 - sum, to the bit
    labels = torch.zeros(best.shape, dtype=torch.uint8, device=part.device)
    lost = best.isnan()
    for k, object_id in enumerate(ids):
        plane = part[:, k]
        wins = (plane > best).logical_or_(plane.isnan()).logical_and_(lost.logical_not())
        labels.masked_fill_(wins, object_id)
        torch.maximum(best, plane, out=best)
        lost = best.isnan()
    return labels


class _LabelView:
    is_clip_view = True  # nodes/preview.py takes it like a tensor
    dtype = torch.uint8

    def __init__(self, masks, ids):
        self.masks, self.ids = masks, ids
        self.shape = torch.Size((masks.num_frames, *masks.frame_hw))

    def dim(self):
        return 3

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        if not isinstance(index, slice):
            return self[index:index + 1][0]
        start, stop, _ = index.indices(self.shape[0])
        if stop <= start:
            return torch.zeros(0, *self.shape[1:], dtype=torch.uint8)
        comfy_env.check_interrupt()  # a long shot's preview takes a while: the cancel button works
        return self.masks.labels(start, stop, self.ids)
