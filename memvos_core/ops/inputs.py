"""Input checks and layout conversions shared by the ops.

Accepted layouts (see the package docstring): IMAGE ``[T,H,W,3]``, MASK ``[T,H,W]`` (or ``[H,W]``),
per-object soft masks ``[T,N,H,W]`` with N object ids, integer label maps ``[T,H,W]``.
Nothing here materialises a whole clip: ``ObjectMasks`` hands out float chunks of frames.
"""
import torch
import torch.nn.functional as F

from ..runtime.frames import same_aspect


def check_frames(frames, name="frames", hint=None):
    """IMAGE ``[T,H,W,C]`` (C 3 or 4; a single ``[H,W,C]`` image is promoted) -> RGB view ``[T,H,W,3]``.
    ``hint``: what the caller's user should do (e.g. which node to connect), added to the message."""
    fix = f": {hint}" if hint else ""
    if not torch.is_tensor(frames):
        raise ValueError(f"{name} must be an IMAGE batch [frames, height, width, 3], got a "
                         f"{type(frames).__name__}{fix}")
    if frames.dim() == 3 and frames.shape[-1] in (3, 4):
        frames = frames.unsqueeze(0)
    if frames.dim() != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must be an IMAGE batch [frames, height, width, 3] (channels last, values "
                         f"0..1), got shape {tuple(frames.shape)}{fix}")
    if not frames.is_floating_point():
        raise ValueError(f"{name} has dtype {frames.dtype}: expected float values in 0..1 "
                         f"(divide 8-bit images by 255){fix}")
    if 0 in frames.shape[:3]:
        raise ValueError(f"{name} is empty (shape {tuple(frames.shape)}){fix or ': give at least one frame'}")
    check_finite(frames, name)
    # the caller's own tensor when it is RGB already: nodes hand it on by reference, no copy
    return frames if frames.shape[-1] == 3 else frames[..., :3]


FINITE_CHUNK = 16  # frames checked at a time: no full-size temporary for a long batch


def check_finite(values, name):
    """Refuse NaN or infinite values (a broken upstream node): they would turn every output NaN."""
    for t0 in range(0, values.shape[0], FINITE_CHUNK):
        if not bool(torch.isfinite(values[t0:t0 + FINITE_CHUNK]).all()):
            bad = t0 + int((~torch.isfinite(values[t0:t0 + FINITE_CHUNK])).flatten(1).any(1).nonzero()[0])
            raise ValueError(f"{name} holds NaN or infinite values (first in frame {bad}): fix the node that "
                             "made them, or clamp them to 0..1")


def check_mask(mask, name="mask"):
    """MASK ``[T,H,W]`` float (``[H,W]`` is promoted to one frame); bool is accepted as 0/1."""
    if not torch.is_tensor(mask):
        raise TypeError(f"{name} must be a torch tensor (MASK [T,H,W]), got {type(mask).__name__}")
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() != 3:
        raise ValueError(f"{name} has shape {tuple(mask.shape)}: expected a MASK [T,H,W] with values 0..1")
    if mask.dtype == torch.bool:
        return mask.float()
    if not mask.is_floating_point():
        raise ValueError(f"{name} has integer dtype {mask.dtype}: expected a float MASK in 0..1 "
                         "(for a label map use the functions that take object masks)")
    return mask


def check_aspect(src_hw, dst_hw, name):
    """Masks may come at the network's internal size; refuse only a different aspect ratio."""
    (h, w), (H, W) = src_hw, dst_hw
    if not same_aspect(src_hw, dst_hw):
        raise ValueError(f"{name} is {h}x{w} (HxW) but the frames are {H}x{W}: the aspect ratio differs; "
                         "resize or crop the masks to match the frames")


def resize_masks(masks, size):
    """Bilinear resize of ``[..., h, w]`` float masks to ``size`` (no-op when it already matches)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    lead = masks.shape[:-2]
    flat = masks.reshape(-1, 1, *masks.shape[-2:])
    antialias = flat.shape[-2] > size[0]
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False, antialias=antialias)
    return out.clamp(0, 1).reshape(*lead, *size)


class ObjectMasks:
    """Per-object masks in any accepted layout, handed out as float chunks ``[t, n, H, W]``.

    * integer ``[T,H,W]``: label map (0 background); ids default to the ids present in it.
    * float/bool ``[T,H,W]``: one object (id ``object_ids[0]`` or 1).
    * float ``[T,N,H,W]``: N objects, ids ``object_ids`` (default ``1..N``).
    """

    def __init__(self, masks, object_ids=None, name="masks"):
        if not torch.is_tensor(masks):
            raise TypeError(f"{name} must be a torch tensor, got {type(masks).__name__}")
        self.name = name
        if masks.dim() == 2:
            masks = masks.unsqueeze(0)
        self.is_label_map = masks.dim() == 3 and not (masks.is_floating_point() or masks.dtype == torch.bool)
        if self.is_label_map:
            ids = object_ids if object_ids is not None else [int(v) for v in torch.unique(masks).tolist() if v != 0]
        elif masks.dim() == 3:
            masks = masks.unsqueeze(1)
            ids = list(object_ids) if object_ids is not None else [1]
        elif masks.dim() == 4:
            if not (masks.is_floating_point() or masks.dtype == torch.bool):
                raise ValueError(f"{name} [T,N,H,W] has dtype {masks.dtype}: expected float probabilities 0..1")
            ids = list(object_ids) if object_ids is not None else list(range(1, masks.shape[1] + 1))
        else:
            raise ValueError(f"{name} has shape {tuple(masks.shape)}: expected a MASK [T,H,W], per-object "
                             "masks [T,N,H,W] or an integer label map [T,H,W]")
        self.ids = [int(i) for i in ids]
        if len(set(self.ids)) != len(self.ids) or any(i <= 0 for i in self.ids):
            raise ValueError(f"object ids {self.ids} for {name} must be distinct positive integers")
        if not self.is_label_map and len(self.ids) != masks.shape[1]:
            raise ValueError(f"{name} holds {masks.shape[1]} object masks but {len(self.ids)} object ids "
                             f"were given ({self.ids}): give one id per mask")
        if masks.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 frames)")
        self.masks = masks

    @property
    def num_frames(self):
        return self.masks.shape[0]

    @property
    def size(self):
        return tuple(self.masks.shape[-2:])

    @property
    def device(self):
        return self.masks.device

    def select(self, ids=None):
        """The chosen subset of object ids (all when ``None``), validated."""
        if ids is None:
            return list(self.ids)
        ids = [int(i) for i in ([ids] if isinstance(ids, int) else ids)]
        unknown = [i for i in ids if i not in self.ids]
        if unknown and not self.is_label_map:
            raise ValueError(f"object ids {unknown} are not among the ids of {self.name} ({self.ids})")
        return ids

    def chunk(self, start, stop, ids=None, size=None, device=None):
        """Float32 ``[stop-start, n, H, W]`` for the selected ids (frames wrap to frame 0 when the
        masks hold a single frame that is broadcast over the clip); moved to ``device`` (before
        any conversion or resize) and resized to ``size`` if given."""
        ids = self.select(ids)
        if self.num_frames == 1:
            part = self.masks[:1].expand(stop - start, *self.masks.shape[1:])
        else:
            part = self.masks[start:stop]
        if device is not None:
            part = part.to(device)
        if self.is_label_map:
            wanted = torch.tensor(ids, dtype=part.dtype, device=part.device).view(1, -1, 1, 1)
            out = (part.unsqueeze(1) == wanted).float()
        else:
            cols = [self.ids.index(i) for i in ids]
            out = part[:, cols].float()
        return resize_masks(out, size) if size is not None else out

    def union(self, start, stop, ids=None, size=None, device=None):
        """Float32 ``[stop-start, H, W]``: per pixel the max over the selected objects."""
        part = self.chunk(start, stop, ids, size, device)
        if part.shape[1] == 0:
            return part.new_zeros(part.shape[0], *part.shape[2:])
        return part.amax(1)

    def check_frames_match(self, num_frames, frame_hw):
        if self.num_frames not in (1, num_frames):
            raise ValueError(f"{self.name} has {self.num_frames} frames but the frames have {num_frames}: "
                             "give one mask per frame (or a single mask to use on every frame)")
        check_aspect(self.size, frame_hw, self.name)
