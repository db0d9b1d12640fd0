"""One propagation pass in one direction over a run of frames.

The pass owns a private engine. Object ids are the artist's; the engine's internal order is the
order in which objects become known in this pass (preloaded keyframes first, then keyframes as
they are reached), which is what XMem's object groups require.
"""
import dataclasses
import json
from dataclasses import dataclass, field

import torch

from ..runtime.frames import internal_size, normalize, resize_image, resize_mask
from ..runtime.perf import FramesAhead
from ..runtime.transfer import HostCopies
from ..runtime.tta import engine_from_state, make_engine
from .objects import ObjectManager


class PropagationCancelled(Exception):
    """Raised when the caller cancelled; the input session is untouched."""


@dataclass
class PassState:
    """What a pass carries to the next chunk in the same direction."""

    direction: str
    next_frame: int
    internal_hw: tuple
    objects: ObjectManager         # artist ids <-> internal indices
    preloaded: list                # keyframe frame indices already in permanent memory
    reached: list = field(default_factory=list)  # keyframes already stepped in this pass
    tensors: dict = field(default_factory=dict)
    engine_meta: dict = field(default_factory=dict)

    def meta(self):
        return {"direction": self.direction, "next_frame": self.next_frame,
                "internal_hw": list(self.internal_hw), "object_order": self.objects.to_meta(),
                "preloaded": self.preloaded, "reached": self.reached, "engine": self.engine_meta}

    @classmethod
    def from_meta(cls, meta, tensors):
        return cls(meta["direction"], meta["next_frame"], tuple(meta["internal_hw"]),
                   ObjectManager.from_meta(meta["object_order"]), list(meta["preloaded"]),
                   list(meta["reached"]), dict(tensors), meta["engine"])

    def to(self, device):
        """The same state with its tensors on ``device`` (itself when they are there already)."""
        if all(t.device == torch.device(device) for t in self.tensors.values()):
            return self
        return dataclasses.replace(self, tensors={k: t.to(device) for k, t in self.tensors.items()})

    def copy(self, **changes):
        """A copy sharing nothing a pass writes to (the tensors are never written in place)."""
        return dataclasses.replace(self, objects=self.objects.copy(), preloaded=list(self.preloaded),
                                   reached=list(self.reached), **changes)


def prepare_image(image, internal_hw, device, antialias):
    """``[H,W,3]`` uint8 or float 0..1 -> normalised ``[3,h,w]`` float32 at internal size."""
    image = torch.as_tensor(image)
    rgb = image.to(device).permute(2, 0, 1)[:3]
    rgb = rgb.float().div(255) if rgb.dtype == torch.uint8 else rgb.float()
    # Normalise then resize, as the reference does (bilinear is linear, so the order only
    # matters at rounding level).
    return resize_image(normalize(rgb), internal_hw, antialias=antialias)


class DirectionalPass:
    def __init__(self, session, direction, frame_hw, state=None):
        self.session = session
        self.direction = direction
        model = session.model
        if state is None:
            hw = internal_size(*frame_hw, session.internal_size)
            state = PassState(direction, None, hw, ObjectManager(), [])
            self.engine = make_engine(model.network, session.config, model.device, model.precision,
                                      session.tta_scales, session.tta_flip)
            self.state = state
            if session.config.memory_mode == "keyframes":
                self._preload()
        else:
            self.state = state
            self.engine = engine_from_state(model.network, session.config, state.tensors,
                                            state.engine_meta, model.device, model.precision)

    # ------------------------------------------------------------------ keys
    def _ordered_keyframes(self):
        kfs = sorted(self.session.keyframes, key=lambda k: k.frame_index)
        return kfs if self.direction == "forward" else kfs[::-1]

    def _know(self, object_ids):
        self.engine.set_num_objects(self.state.objects.know(object_ids))

    def _mask(self, keyframe):
        """One-hot over every object known now, at internal size; and the valid (1-based) ids."""
        objects = self.state.objects
        mask = resize_mask(keyframe.one_hot(objects.ids), self.state.internal_hw)
        return mask, objects.channels(keyframe.object_ids)

    def _preload(self):
        """XMem++: every keyframe that annotates all objects known before it goes into permanent
        memory before the first frame, so every frame benefits from it (spec §5.3)."""
        s = self.session
        for kf in self._ordered_keyframes():
            if not set(self.state.objects) <= set(kf.object_ids):
                continue  # partial: merged with the prediction when the pass reaches it
            self._know(kf.object_ids)
            mask, _ = self._mask(kf)
            image = prepare_image(kf.image, self.state.internal_hw, self.engine.device, s.antialias)
            with torch.no_grad():
                self.engine.add_permanent(image, mask)
            self.state.preloaded.append(kf.frame_index)

    # ------------------------------------------------------------------- run
    def run(self, frames, clip_indices, frame_of, on_frame, cancel=None, sync=None, at_keyframe=None):
        """Step through ``clip_indices`` (in this pass's order). ``frame_of(i)`` returns the frame
        ``[H,W,3]``; ``on_frame(i, prob)`` receives probabilities ``[K+1,h,w]`` on the host over
        ``state.objects`` (K may grow), or ``prob=None`` for frames the pass cannot reach yet.

        On CUDA a frame's result reaches ``on_frame`` a few frames later (the copy to the host
        runs while the next frames are computed, :class:`~memvos_core.runtime.transfer.HostCopies`), so
        the engine may be ahead of the results handed over. ``sync``: ``(wanted, at_sync)``;
        between two frames, when ``wanted()`` is true, every result is handed over first and then
        ``at_sync()`` is called: the engine's state then matches the frames handed over (where a
        checkpoint may be taken). A cancel hands over every result before it stops too.
        ``at_keyframe(i, state)``: the pass's state just before it steps keyframe ``i`` (where a
        later run of only part of the shot may start, :mod:`.span`)."""
        s = self.session
        keyframes = {k.frame_index: k for k in s.keyframes}
        keyframes_permanent = s.config.memory_mode == "keyframes"
        # key features of the next frames in one batch when the engine's options ask for it
        # (key_batch); the key encoder does not read memory, so this changes no number
        ahead = FramesAhead(self.engine, lambda j: prepare_image(
            frame_of(j), self.state.internal_hw, self.engine.device, s.antialias), clip_indices)
        copies = HostCopies()

        def hand_over(finished):
            for j, host in finished:
                on_frame(j, host)

        def cancelled():
            try:
                stop = cancel is not None and cancel()
            except BaseException:
                hand_over(copies.flush())
                raise
            if stop:
                hand_over(copies.flush())
            return stop

        last = clip_indices[-1] if clip_indices else None
        for i in clip_indices:
            if cancelled():
                raise PropagationCancelled("propagation cancelled")
            kf = keyframes.get(i)
            if kf is None and not self.engine.has_memory:
                hand_over(copies.put(i, None))  # nothing to segment from before the first annotation
                continue
            if kf is not None and at_keyframe is not None:
                at_keyframe(i, self.snapshot(i))
            image, feats = ahead.take(i)
            mask = valid = None
            write, permanent = True, False
            if kf is not None and i not in self.state.reached:
                self._know(kf.object_ids)
                mask, valid = self._mask(kf)
                if keyframes_permanent:
                    write = i not in self.state.preloaded
                    permanent = write
                    if write:
                        self.state.preloaded.append(i)
                self.state.reached.append(i)
            with torch.no_grad():
                prob = self.engine.step(image, mask, valid, write_memory=write, write_permanent=permanent,
                                        feats=feats)
            hand_over(copies.put(i, prob))
            if sync is not None and i != last and sync[0]():
                hand_over(copies.flush())
                sync[1]()
        hand_over(copies.flush())
        step = 1 if self.direction == "forward" else -1
        if clip_indices:
            self.state.next_frame = clip_indices[-1] + step

    def snapshot(self, next_frame):
        """The pass's state now, to continue at ``next_frame`` (a checkpoint between frames).
        Shares nothing the pass will write to."""
        tensors, meta = self.engine.state()
        return self.state.copy(next_frame=next_frame, tensors=tensors, engine_meta=json.loads(json.dumps(meta)))

    def finish(self):
        tensors, meta = self.engine.state()
        self.state.tensors, self.state.engine_meta = tensors, meta
        return self.state
