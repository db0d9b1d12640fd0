"""Propagation results: compact per-frame probabilities, materialised at source size on demand."""
import torch

from ..frames import resize_image

DIRECTIONS = ("forward", "backward", "both")


def blend_weight(t, previous_key, next_key):
    """Weight of the forward result at frame ``t`` (see :func:`combine`)."""
    if previous_key is None:
        return 0.0
    if next_key is None:
        return 1.0
    if next_key == previous_key:
        return 1.0
    return (next_key - t) / (next_key - previous_key)


QUANT = 65535  # stored probabilities: uint16, step 1.5e-5


def quantize(prob):
    return (prob.float().clamp(0, 1) * QUANT).round().to("cpu", torch.uint16)


def dequantize(stored):
    return stored.float() / QUANT


def combine(forward, backward, weight):
    """The rule for ``direction="both"`` between keyframes: a linear blend of the two directions'
    probabilities, each weighted by how close the keyframe it started from is:
    ``P = w F + (1 - w) B`` with ``w = (next_key - t) / (next_key - prev_key)``. Before the first
    keyframe only the backward result counts (w = 0), after the last only the forward one (w = 1).
    A direction that did not reach the frame gives way to the other. Computed in float32 from the
    stored (uint16-quantised) values and quantised again."""
    if forward is None:
        return backward
    if backward is None or weight >= 1.0:
        return forward
    if weight <= 0.0:
        return backward
    return quantize(weight * dequantize(forward) + (1 - weight) * dequantize(backward))


class PropagationResult:
    """Per-frame results of one propagation call.

    Probabilities are kept at internal resolution as uint16 (``[N+1,h,w]``, background first,
    objects in ``object_ids`` order) and resized to the source size only when asked for.
    Keyframes return exactly the artist's mask for the objects they annotate."""

    def __init__(self, object_ids, source_hw, keyframes):
        self.object_ids = tuple(object_ids)
        self.source_hw = tuple(source_hw)
        self._keyframes = {k.frame_index: k for k in keyframes}
        self._probs = {}

    def put(self, index, prob):
        self._probs[index] = prob

    @property
    def frame_indices(self):
        return sorted(self._probs)

    def reached(self, index):
        return self._probs.get(index) is not None

    def __len__(self):
        return len(self._probs)

    def probabilities(self, index, object_ids=None):
        """float32 ``[n+1,H,W]`` at source size (zeros with background 1 if not reached)."""
        return source_probabilities(self._probs.get(index), self._keyframes.get(index),
                                    self.object_ids, self.source_hw, object_ids)

    def labels(self, index):
        """uint8 ``[H,W]`` artist object ids (0 = background)."""
        return probabilities_to_labels(self.probabilities(index), self.object_ids)

    def object_masks(self, object_ids=None, device="cpu"):
        """float32 ``[T,n,H,W]`` soft masks of the chosen objects over ``frame_indices``."""
        ids = list(object_ids or self.object_ids)
        return torch.stack([self.probabilities(i, ids)[1:].to(device) for i in self.frame_indices])


def source_probabilities(prob, keyframe, all_ids, source_hw, object_ids=None):
    ids = list(object_ids) if object_ids is not None else list(all_ids)
    for o in ids:
        if o not in all_ids:
            raise ValueError(f"object id {o} is not in this propagation (objects: {list(all_ids)})")
    h, w = source_hw
    if prob is None:
        planes = torch.zeros(len(all_ids), h, w)
    else:
        planes = resize_image(dequantize(prob), (h, w))[1:]
    if keyframe is not None:
        covered = keyframe.labels > 0
        annotated = set(keyframe.object_ids)
        planes = planes.masked_fill(covered, 0)
        for j, o in enumerate(all_ids):
            if o in annotated:
                planes[j] = (keyframe.labels == o).float()
    chosen = planes[[list(all_ids).index(o) for o in ids]] if ids else planes[:0]
    background = (1 - planes.sum(0, keepdim=True)).clamp_(0, 1)
    return torch.cat([background, chosen], 0)


def probabilities_to_labels(prob, object_ids):
    lut = torch.tensor([0, *object_ids], dtype=torch.uint8)
    return lut[prob.argmax(0)]


def to_session_order(prob, pass_order, session_ids):
    """Pass-internal ``[K+1,h,w]`` -> ``[N+1,h,w]`` in session order, quantised, on CPU."""
    out = prob.new_zeros(len(session_ids) + 1, *prob.shape[-2:])
    out[0] = prob[0]
    for j in range(prob.shape[0] - 1):
        out[session_ids.index(pass_order[j]) + 1] = prob[j + 1]
    # Objects this pass does not know yet keep probability 0; background absorbs nothing.
    return quantize(out)


__all__ = ["DIRECTIONS", "PropagationResult", "blend_weight", "combine"]
