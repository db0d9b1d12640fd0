"""SAM 2.1's video tracking, step for step as Meta's video predictor (2.1 release) does it, with
memory bounded by the window the model reads.

Every object is tracked on its own (batch size 1). Per object there are

* conditioning frames: the prompted frames (a mask, or clicks and boxes). Their memory is
  encoded from the binarised prompt output when tracking starts; every tracked frame attends
  to all of them, and to their pointers where they are not in the future of the tracking
  direction;
* recent frames: tracked frames, of which the model reads the last 6 (memory) and the last
  ``min(num_frames, 16) - 1`` (object pointers). Older ones are dropped as tracking advances
  (the official predictor keeps every frame of the shot), which changes nothing in one pass.

Frames are given as a callable ``t -> [1,3,S,S]`` normalised image (the image size ``S`` is
the network's); outputs are mask logits at the video size ``(H, W)``, one row per object in
the order the objects were first prompted.
"""
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from .image import prompt_points
from .layers import sine_table
from .network import MAX_POINTERS, NUM_MASKMEM


@dataclass
class FrameOutput:
    low: torch.Tensor                 # [1,1,S/4,S/4] mask logits
    pointer: torch.Tensor             # [1,256]
    score: torch.Tensor               # [1,1] object-score logit
    memory: Optional[torch.Tensor] = None   # [1,64,h,w] bfloat16, once encoded
    iou: Optional[torch.Tensor] = None


@dataclass
class ObjectTrack:
    cond: dict = field(default_factory=dict)      # frame -> FrameOutput (prompted)
    recent: dict = field(default_factory=dict)    # frame -> FrameOutput (tracked)
    points: dict = field(default_factory=dict)    # frame -> (coords [1,P,2], labels [1,P])
    tracked: dict = field(default_factory=dict)   # frame -> reverse: frames a propagation went through


class VideoTracker:
    def __init__(self, network, frames, video_hw, num_frames, keep_all=False):
        self.net = network
        self.frames = frames
        self.video_hw = tuple(video_hw)
        self.num_frames = int(num_frames)
        self.keep_all = keep_all
        self.objects = {}          # obj_id -> ObjectTrack, in order of first prompt
        self._cached = (None, None)

    # ------------------------------------------------------------ features
    def features(self, t):
        """``(stride-16 map, its positions, high-res maps)`` of frame ``t``; the last frame's are
        kept (a prompt and the tracking step of one frame share them)."""
        if self._cached[0] != t:
            with torch.inference_mode():
                self._cached = (t, self.net.embed_image(self.frames(t)))
        return self._cached[1]

    def _track(self, obj_id):
        return self.objects.setdefault(obj_id, ObjectTrack())

    # ------------------------------------------------------------- prompts
    @torch.inference_mode()
    def add_mask(self, t, obj_id, mask):
        """A mask prompt (``[H,W]`` bool) for one object: the frame becomes a conditioning frame
        whose output is the mask itself. Returns the frame's logits of all objects."""
        track = self._track(obj_id)
        s = self.net.image_size
        m = torch.as_tensor(mask).to(torch.bool)[None, None].float()
        if m.shape[-2:] != (s, s):
            m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        feat, _, high_res = self.features(t)
        low, pointer, score = self.net.mask_as_output(feat, high_res, m.to(feat.device))
        track.points.pop(t, None)
        track.cond[t] = FrameOutput(low, pointer, score)
        track.recent.pop(t, None)
        return self.frame_logits(t)

    @torch.inference_mode()
    def add_points(self, t, obj_id, points=None, labels=None, box=None, clear_old=True):
        """Clicks ``(x, y)`` in video pixels (labels 1/0) and/or a box for one object; with
        ``clear_old=False`` the clicks add to the frame's earlier ones and its last output is
        fed back as a mask prompt (a refinement)."""
        if box is not None and not clear_old:
            raise ValueError("a box replaces the frame's clicks: pass clear_old=True with a box")
        track = self._track(obj_id)
        coords, labs = prompt_points(points, labels, box, self.video_hw, self.net.image_size)
        if coords is None:
            raise ValueError("add_points needs clicks or a box")
        old = None if clear_old else track.points.get(t)
        if old is not None:
            coords, labs = torch.cat([old[0], coords], 1), torch.cat([old[1], labs], 1)
        track.points[t] = (coords, labs)
        prev = track.cond.get(t) or track.recent.get(t)
        prev_logits = None if prev is None else prev.low.clamp(-32.0, 32.0)
        # A frame no propagation went through yet is a first prompt (no memory read); a correction
        # on a tracked frame reads memory as that frame's tracking did. Either way it becomes a
        # conditioning frame (the official predictor's add_all_frames_to_correct_as_cond).
        init = t not in track.tracked
        reverse = track.tracked.get(t, False)
        feat, pos, high_res = self.features(t)
        pix = self._conditioned(track, t, feat, pos, init, reverse)
        multimask = coords.shape[1] <= 1 and init
        low, pointer, score, iou, _ = self.net.sam_heads(pix, high_res, coords.to(feat.device),
                                                         labs.to(feat.device), prev_logits, multimask)
        track.cond[t] = FrameOutput(low, pointer, score, iou=iou)
        track.recent.pop(t, None)
        return self.frame_logits(t)

    def frame_logits(self, t):
        """Logits ``[K,H,W]`` of every object on frame ``t`` (``-1024`` where it has none)."""
        h, w = self.video_hw
        rows = []
        for track in self.objects.values():
            out = track.cond.get(t) or track.recent.get(t)
            if out is None:
                rows.append(torch.full((1, 1, h, w), -1024.0))
            else:
                rows.append(F.interpolate(out.low.float(), size=(h, w), mode="bilinear", align_corners=False))
        return torch.cat(rows, 0)[:, 0]

    # ----------------------------------------------------------- tracking
    def _encode_prompts(self):
        for obj_id, track in self.objects.items():
            for t, out in track.cond.items():
                if out.memory is None:
                    feat, _, _ = self.features(t)
                    s = self.net.image_size
                    high = F.interpolate(out.low, size=(s, s), mode="bilinear", align_corners=False)
                    mem, _ = self.net.encode_memory(feat, high, out.score, binarize=True)
                    out.memory = mem.to(torch.bfloat16)
            if not track.cond:
                raise ValueError(f"object {obj_id} has no prompt: give it a mask, clicks or a box first")

    @torch.inference_mode()
    def propagate(self, start=None, reverse=False, end=None):
        """Track every object from ``start`` (default: the first prompted frame) to ``end`` (the
        shot's last frame, or its first in reverse); yields ``(t, obj_ids, logits [K,H,W],
        scores [K])`` per frame."""
        if not self.objects:
            raise ValueError("no object has a prompt yet")
        self._encode_prompts()
        if start is None:
            start = min(t for track in self.objects.values() for t in track.cond)
        if end is None:
            end = 0 if reverse else self.num_frames - 1
        order = range(start, end - 1, -1) if reverse else range(start, end + 1)
        ids = list(self.objects)
        for t in order:
            scores = []
            for track in self.objects.values():
                out = track.cond.get(t)
                if out is None:
                    out = self._track_frame(track, t, reverse)
                    track.recent[t] = out
                    if not self.keep_all:
                        self._forget(track, t, reverse)
                track.tracked[t] = reverse
                scores.append(float(out.score.reshape(-1)[0]))
            yield t, ids, self.frame_logits(t), scores

    def _forget(self, track, t, reverse):
        reach = max(NUM_MASKMEM - 1, min(self.num_frames, MAX_POINTERS) - 1)
        for old in [f for f in track.recent if (t - f if not reverse else f - t) >= reach]:
            del track.recent[old]

    def _track_frame(self, track, t, reverse):
        feat, pos, high_res = self.features(t)
        pix = self._conditioned(track, t, feat, pos, False, reverse)
        low, pointer, score, iou, _ = self.net.sam_heads(pix, high_res, multimask=True)
        s = self.net.image_size
        high = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
        mem, _ = self.net.encode_memory(feat, high, score, binarize=False)
        return FrameOutput(low, pointer, score, mem.to(torch.bfloat16), iou)

    def _conditioned(self, track, t, feat, pos, init, reverse):
        if init:
            return feat + self.net.no_mem_embed.view(1, -1, 1, 1)
        return attend_memory(self.net, feat, pos, list(track.cond.items()), track.recent, t, self.num_frames, reverse)


def attend_memory(net, feat, pos, conds, recent, t, num_frames, reverse=False):
    """The stride-16 map of frame ``t`` after the memory attention, as the official tracker
    builds its memory: every conditioning frame (``(frame or None, FrameOutput)`` pairs, in
    the order they were given; ``None``: not reached yet, so its pointer is not used), the 6
    frames before ``t`` in the tracking direction from ``recent``, then the object pointers of
    the conditioning frames not ahead of ``t`` and of the last ``min(num_frames, 16) - 1``
    recent frames, with their signed temporal offsets."""
    memories, positions = [], []
    table = None
    for slot, out in [(NUM_MASKMEM - 1, out) for _, out in conds] + [
            (back - 1, recent.get(t - (-back if reverse else back))) for back in range(NUM_MASKMEM - 1, 0, -1)]:
        if out is None or out.memory is None:
            continue
        if table is None:
            table = sine_table(out.memory.shape[1], out.memory.shape[-2], out.memory.shape[-1], feat.device)
            table = table.flatten(2).transpose(1, 2)
        memories.append(out.memory.flatten(2).transpose(1, 2).float())  # bfloat16 storage back to float32
        positions.append(table + net.maskmem_tpos_enc[slot].view(1, 1, -1))
    step = -1 if reverse else 1
    offsets, pointers = [], []
    for f, out in conds:
        if f is not None and ((f >= t) if reverse else (f <= t)):
            offsets.append((t - f) * step)
            pointers.append(out.pointer)
    for back in range(1, min(num_frames, MAX_POINTERS)):
        f = t - step * back
        if f < 0 or f >= num_frames:
            break
        out = recent.get(f)
        if out is not None:
            offsets.append(back)
            pointers.append(out.pointer)
    num_ptr = 0
    if pointers:
        dim = net.mem_dim
        split = net.hidden_dim // dim
        memories.append(torch.stack(pointers, 0)[:, 0].reshape(1, -1, dim))  # each pointer -> `split` tokens
        positions.append(net.pointer_positions(offsets, num_frames).repeat_interleave(split, dim=0)[None])
        num_ptr = len(pointers) * split
    return net.attend_memory(feat, pos, torch.cat(memories, 1), torch.cat(positions, 1), num_ptr)
