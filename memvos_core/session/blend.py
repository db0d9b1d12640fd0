"""``direction="both"``: which frames each pass runs over and how their results combine.

The rule, per object ``o`` and frame ``t``. Let ``prev`` be the last keyframe at or before ``t``
that annotates ``o`` and ``next`` the first one at or after ``t`` (keyframes of other objects do
not count). The forward pass's weight for ``o`` is

    w = (next - t) / (next - prev)   between two of o's keyframes,
    w = 1                            at or after o's last keyframe (and on a keyframe of o),
    w = 0                            before o's first keyframe,

and ``P_o(t) = w F_o(t) + (1 - w) B_o(t)`` when both passes know ``o`` at ``t``. A pass knows an
object once it has met it: preloaded into permanent memory (``xmem++``) or reached at a keyframe
that annotates it. When only one pass knows ``o`` at ``t``, ``P_o`` is that pass's value, whatever
the weight (a pass never dilutes an object it has not met); when neither does, 0. The background
is what the objects leave: ``1 - sum_o P_o``; where the objects add up to more than 1 they are
scaled down to sum 1 (background 0).

With keyframes that all annotate every object this is the per-frame distance blend of XMem's
bidirectional use: the same ``w`` for every object, ``P = w F + (1 - w) B``.

Frames each pass runs over (:func:`pass_ranges`): the forward pass contributes only after the
first keyframe and the backward pass only before the last one, so ``both`` runs the forward pass
from the first keyframe and the backward pass down from the last one, and does not run a pass
with nothing to contribute (one keyframe at the start: forward work only).
"""
from bisect import bisect_left, bisect_right

import torch

from .store import StoredFrame, UNREACHED

QUANT = 65535  # stored probabilities: uint16, step 1.5e-5


def quantize(prob):
    return (prob.float().clamp(0, 1) * QUANT).round().to("cpu", torch.uint16)


def dequantize(stored):
    return stored.float() / QUANT


def blend_weight(t, previous_key, next_key):
    """Forward weight at ``t`` between one object's keyframes ``previous_key`` and ``next_key``
    (either None when there is none on that side); see the module docstring."""
    if previous_key is None:
        return 0.0
    if next_key is None or next_key == previous_key:
        return 1.0
    return (next_key - t) / (next_key - previous_key)


def keyframes_by_object(keyframes):
    """``{object id: sorted frame indices of the keyframes that annotate it}``."""
    out = {}
    for k in keyframes:
        for o in k.object_ids:
            out.setdefault(o, []).append(k.frame_index)
    return {o: sorted(v) for o, v in out.items()}


def object_weights(t, keys_by_object):
    """``{object id: forward weight at frame t}``."""
    weights = {}
    for o, keys in keys_by_object.items():
        before = bisect_right(keys, t)
        after = bisect_left(keys, t)
        weights[o] = blend_weight(t, keys[before - 1] if before else None,
                                  keys[after] if after < len(keys) else None)
    return weights


def combine(object_ids, forward, backward, weights, exclusive=True):
    """The blended :class:`StoredFrame` of two passes' results at one frame (either may be None
    or unreached). ``object_ids``: the session's ids, the order of the planes; ``weights``: the
    forward weight of each object (:func:`object_weights`). Computed in float32 from the stored
    uint16 values and quantised again; an object taken from one pass alone keeps its stored
    value exactly. ``exclusive=False`` (mattes, which may overlap): no renormalisation."""
    forward = forward if forward is not None else UNREACHED
    backward = backward if backward is not None else UNREACHED
    if not backward.reached:
        return forward
    if not forward.reached:
        return backward
    f_known, b_known = set(forward.known), set(backward.known)
    f, b = dequantize(forward.planes), dequantize(backward.planes)
    out = torch.zeros_like(f)
    for j, o in enumerate(object_ids):
        in_f, in_b = o in f_known, o in b_known
        if in_f and in_b:
            w = weights.get(o, 1.0)
            out[j] = f[j] if w >= 1.0 else b[j] if w <= 0.0 else w * f[j] + (1 - w) * b[j]
        elif in_f:
            out[j] = f[j]
        elif in_b:
            out[j] = b[j]
    total = out.sum(0)
    # Renormalise where the objects claim more than the whole pixel; the slack keeps the uint16
    # rounding of values taken unchanged from one pass from rescaling them.
    over = total > 1 + len(object_ids) / QUANT
    if exclusive and over.any():
        out = torch.where(over, out / total.clamp(min=1e-12), out)
    known = tuple(o for o in object_ids if o in f_known or o in b_known)
    return StoredFrame(quantize(out), known)


def pass_ranges(direction, keyframe_indices, start, end):
    """``{"forward": (lo, hi) | None, "backward": (lo, hi) | None}``: the half-open clip range each
    pass runs over (None: not run). ``forward``/``backward`` run over all of ``[start, end)``;
    ``both`` only where the pass contributes to the blend (module docstring)."""
    if direction == "forward":
        return {"forward": (start, end), "backward": None}
    if direction == "backward":
        return {"forward": None, "backward": (start, end)}
    first, last = min(keyframe_indices), max(keyframe_indices)
    # The forward pass contributes after its first keyframe, the backward pass before its last
    # one; each must still step that keyframe when it lies inside the range.
    forward = (max(start, first), end) if end - 1 > first else None
    backward = (start, min(end, last + 1)) if start < last else None
    return {"forward": forward, "backward": backward}


__all__ = ["blend_weight", "combine", "keyframes_by_object", "object_weights", "pass_ranges",
           "quantize", "dequantize", "QUANT"]
