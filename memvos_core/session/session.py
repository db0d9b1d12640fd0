"""The rotoscoping session: an immutable bundle of model, settings, keyframes and memory state.

Every operation returns a new :class:`Session`; the tensors of the one it was called on are never
written (ComfyUI caches node outputs and hands the same object to every downstream node).
Unchanged tensors are shared between sessions because nothing writes into them.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..config import MemoryConfig
from .directional import PassState, PropagationCancelled
from .keyframes import Keyframe, as_uint8_image, mask_to_binary
from .objects import check_object_id

DEFAULT_INTERNAL_SIZE = 480


@dataclass(frozen=True, eq=False)
class Session:
    model: object
    config: MemoryConfig = field(default_factory=MemoryConfig)
    internal_size: int = DEFAULT_INTERNAL_SIZE   # shorter side inside the network; -1 = native
    antialias: bool = False                      # as the reference's tensor resize (spec §3.1)
    tta_scales: tuple = ()                       # test-time augmentation: extra internal scales,
    tta_flip: bool = False                       # e.g. (1.0, 0.75), and a horizontal flip
    keyframes: tuple = ()
    forward_state: Optional[PassState] = None
    backward_state: Optional[PassState] = None

    # ---------------------------------------------------------------- facts
    @property
    def object_ids(self):
        return tuple(sorted({o for k in self.keyframes for o in k.object_ids}))

    @property
    def frame_size(self):
        return self.keyframes[0].size if self.keyframes else None

    def keyframe(self, frame_index):
        return next((k for k in self.keyframes if k.frame_index == frame_index), None)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------ keyframes
    def add_annotation(self, frame_index, image, mask, object_id):
        """Annotate one object on one frame. ``image`` ``[H,W,3]``; ``mask`` ``[H,W]`` in 0..1
        (> 0.5 is the object). An object annotated again on the same frame is replaced; other
        objects of that frame keep their masks, and the new object wins where they overlap."""
        object_id = check_object_id(object_id)
        frame_index = _check_frame_index(frame_index)
        image = as_uint8_image(image)
        binary = mask_to_binary(mask, image.shape[:2])
        old = self.keyframe(frame_index)
        if old is not None:
            labels = old.labels.clone()
            labels[labels == object_id] = 0
            ids = set(old.object_ids)
        else:
            labels = torch.zeros(image.shape[:2], dtype=torch.uint8)
            ids = set()
        labels[binary] = object_id
        return self._with_keyframe(Keyframe(frame_index, image, labels, tuple(sorted(ids | {object_id}))))

    def add_label_map(self, frame_index, image, labels, object_ids=None):
        """Annotate several objects at once from an index map (0 = none). ``object_ids`` defaults
        to every id present; listing an absent id annotates that object as not visible."""
        frame_index = _check_frame_index(frame_index)
        image = as_uint8_image(image)
        labels = torch.as_tensor(labels)
        if tuple(labels.shape) != tuple(image.shape[:2]):
            raise ValueError(f"label map {tuple(labels.shape)} does not match the frame {tuple(image.shape[:2])}")
        present = sorted(set(torch.unique(labels).tolist()) - {0})
        ids = sorted({check_object_id(o) for o in (object_ids if object_ids is not None else present)})
        if not ids:
            raise ValueError(f"the annotation of frame {frame_index} is empty: draw at least one object")
        stray = sorted(set(present) - set(ids))
        if stray:
            raise ValueError(f"label map of frame {frame_index} has ids {stray} that are not in object_ids {ids}")
        return self._with_keyframe(Keyframe(frame_index, image, labels.to(torch.uint8).cpu(), tuple(ids)))

    def remove_keyframe(self, frame_index):
        kept = tuple(k for k in self.keyframes if k.frame_index != frame_index)
        return self.replace(keyframes=kept, forward_state=None, backward_state=None)

    def _with_keyframe(self, keyframe):
        if self.frame_size is not None and keyframe.size != self.frame_size:
            h, w = self.frame_size
            raise ValueError(
                f"frame {keyframe.frame_index} is {keyframe.size[0]}x{keyframe.size[1]} but this session's "
                f"frames are {h}x{w}: use frames of the same shot at the same size")
        others = tuple(k for k in self.keyframes if k.frame_index != keyframe.frame_index)
        kfs = tuple(sorted(others + (keyframe,), key=lambda k: k.frame_index))
        # New annotations change what memory should hold: propagation restarts from them.
        return self.replace(keyframes=kfs, forward_state=None, backward_state=None)

    # ---------------------------------------------------------- propagation
    def propagate(self, frames, first_frame_index=0, direction="forward", start=None, end=None,
                  progress=None, cancel=None, *, store=None, on_final=None, retain=True, shot_length=None):
        """Propagate over clip frames ``[start, end)`` of which ``frames`` (a sequence of
        ``[H,W,3]`` uint8 or float 0..1, e.g. a ComfyUI IMAGE batch or :mod:`..media` frames read
        lazily) holds ``first_frame_index ..``.

        Returns ``(new_session, result)``. A forward pass continues from this session's forward
        state when it stopped exactly where the pass starts (chunked long shots), likewise backward.
        ``progress(done, total)`` is called every frame; ``cancel()`` is checked every frame and may
        raise or return True (then :class:`PropagationCancelled` is raised and nothing is returned).
        ``store``: the :class:`~.store.ResultStore` the per-frame results go to (a temporary one
        under the default cache root when None); ``on_final(index, result)``: called as soon as a
        frame is final; ``retain=False``: frames are only handed to ``on_final``. ``shot_length``:
        the frames of the whole shot when ``frames`` is a chunk of it (default: the shot ends with
        the frames given; a family may code time relative to the shot's length).
        Checkpoints and resuming: :class:`~.propagation.Propagation`."""
        from .propagation import Propagation
        job = Propagation(self, frames, first_frame_index, direction, start, end, store=store, retain=retain,
                          shot_length=shot_length)
        return job.run(progress, cancel, on_final)

    def to(self, device):
        """The same session with its memory state on ``device`` (e.g. off the GPU between nodes)."""
        def move(state):
            return None if state is None else state.to(device)
        return self.replace(forward_state=move(self.forward_state), backward_state=move(self.backward_state))

    # ---------------------------------------------------------------- files
    def save(self, path, what=None):
        from .storage import save_session
        return save_session(self, path, what=what)

    @staticmethod
    def load(path, model, config=None):
        from .storage import read_session
        return Session(**read_session(path, model, config)[0])


def _check_frame_index(frame_index):
    frame_index = int(frame_index)
    if frame_index < 0:
        raise ValueError(f"frame index {frame_index} is negative: frames count from 0")
    return frame_index


__all__ = ["Session", "PropagationCancelled", "Keyframe"]
