"""Propagation results: compact per-frame probabilities in a store, at source size on demand."""
import torch

from ..runtime.frames import resize_image
from .blend import QUANT, blend_weight, combine, dequantize, quantize
from .objects import ObjectManager
from .store import UNREACHED, StoredFrame

DIRECTIONS = ("forward", "backward", "both")
RESULT_AREA = "result"


class PropagationResult:
    """Per-frame results of one propagation call over clip frames ``frame_indices``.

    Probabilities are kept at internal resolution as uint16 (``[N,h,w]``, objects in
    ``object_ids`` order, background implied) in a :class:`~.store.ResultStore` on disk, read back
    one frame at a time and resized to the source size only when asked for; RAM does not grow
    with the shot. Keyframes return exactly the artist's mask for the objects they annotate.

    ``retain=False`` (the command line, which writes each frame as it becomes final) keeps only
    the last frame put, for the consumer told about it, and writes nothing.
    The result keeps its store alive: a temporary store is deleted once no result holds it."""

    def __init__(self, object_ids, source_hw, keyframes, store, frame_range, retain=True):
        self.object_ids = tuple(object_ids)
        self.source_hw = tuple(source_hw)
        self.store = store
        self.retain = retain
        self._keyframes = {k.frame_index: k for k in keyframes}
        self._range = tuple(frame_range)
        self._last = None  # (index, StoredFrame) of the frame put last

    def put(self, index, entry):
        self._last = (index, entry)
        if self.retain:
            self.store.put(RESULT_AREA, index, entry)

    @property
    def frame_indices(self):
        return list(range(*self._range))

    def __len__(self):
        return self._range[1] - self._range[0]

    def stored(self, index):
        """The frame's :class:`~.store.StoredFrame` (uint16 planes at internal size)."""
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        if not self._range[0] <= index < self._range[1]:
            raise IndexError(f"frame {index} is not in this result (frames {self._range[0]}..{self._range[1] - 1})")
        if not self.retain:
            raise ValueError(f"frame {index} was handed on as it became final and not kept: "
                             "propagate with retain=True to read frames later")
        entry = self.store.get(RESULT_AREA, index)
        return UNREACHED if entry is None else entry

    def internal(self, index):
        """uint16 ``[N,h,w]`` at internal resolution, or None if no pass reached the frame."""
        return self.stored(index).planes

    def reached(self, index):
        return self.stored(index).reached

    def probabilities(self, index, object_ids=None):
        """float32 ``[n+1,H,W]`` at source size (zeros with background 1 if not reached)."""
        return source_probabilities(self.internal(index), self._keyframes.get(index),
                                    self.object_ids, self.source_hw, object_ids)

    def labels(self, index):
        """uint8 ``[H,W]`` artist object ids (0 = background)."""
        return probabilities_to_labels(self.probabilities(index), self.object_ids)

    def object_masks(self, object_ids=None, device="cpu"):
        """float32 ``[T,n,H,W]`` soft masks of the chosen objects over ``frame_indices`` (the whole
        range in RAM: for short clips; long ones read :meth:`probabilities` frame by frame)."""
        ids = list(object_ids or self.object_ids)
        return torch.stack([self.probabilities(i, ids)[1:].to(device) for i in self.frame_indices])


def source_probabilities(planes, keyframe, all_ids, source_hw, object_ids=None):
    ids = list(object_ids) if object_ids is not None else list(all_ids)
    positions = ObjectManager(all_ids).indices(ids)
    h, w = source_hw
    if planes is None:
        planes = torch.zeros(len(all_ids), h, w)
    else:
        planes = resize_image(dequantize(planes), (h, w))
    if keyframe is not None:
        covered = keyframe.labels > 0
        annotated = set(keyframe.object_ids)
        planes = planes.masked_fill(covered, 0)
        for j, o in enumerate(all_ids):
            if o in annotated:
                planes[j] = (keyframe.labels == o).float()
    chosen = planes[positions] if ids else planes[:0]
    background = (1 - planes.sum(0, keepdim=True)).clamp_(0, 1)
    return torch.cat([background, chosen], 0)


def probabilities_to_labels(prob, object_ids):
    """``[N+1,H,W]`` -> uint8 ``[H,W]`` ids of the most likely plane (the first on ties, as
    argmax; ``max(0)`` because torch's CPU argmax over the leading dimension is ~6x slower)."""
    lut = torch.tensor([0, *object_ids], dtype=torch.uint8)
    return lut[prob.max(0).indices]


def to_session_order(prob, pass_order, session_ids):
    """A pass's ``[K+1,h,w]`` (background first, its own object order) -> :class:`StoredFrame`
    with uint16 ``[N,h,w]`` in session order; objects the pass has not met are 0 and not known."""
    k = prob.shape[0] - 1
    out = prob.new_zeros(len(session_ids), *prob.shape[-2:])
    for j, position in enumerate(ObjectManager(session_ids).indices(pass_order[:k])):
        out[position] = prob[j + 1]
    return StoredFrame(quantize(out), tuple(pass_order[:k]))


__all__ = ["DIRECTIONS", "PropagationResult", "QUANT", "StoredFrame", "blend_weight", "combine",
           "probabilities_to_labels", "source_probabilities", "to_session_order"]
