"""What a session file (and a propagation checkpoint, which is one) must hold, checked on load
before anything is built from it: types, ranges, and the tensors the metadata names.

A damaged or hand-edited file is refused with one line naming the file, the field and the fix,
instead of a KeyError, a TypeError or a torch overflow at the first frame propagated.
"""
import math

import torch

from .objects import MAX_OBJECT_ID

PASS_NAMES = ("forward", "backward")
PHASES = ("pending", "running", "done", "skipped")
TTA_SCALE_RANGE = (0.25, 4.0)  # as the command line allows (memvos_core.command.shot_inputs)


class SchemaError(ValueError):
    """One field of the metadata is wrong; the message says which and how."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _need(ok, field, value, expected):
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise SchemaError(f"{field} is {shown}, expected {expected}")


def _field(meta, key, where):
    if key not in meta:
        raise SchemaError(f"{where}{key} is missing")
    return meta[key]


def _dict(meta, key, where=""):
    value = _field(meta, key, where)
    _need(isinstance(value, dict), f"{where}{key}", value, "an object")
    return value


def _int(meta, key, where="", low=None, high=None, allow_none=False):
    value = _field(meta, key, where)
    if allow_none and value is None:
        return value
    _need(_is_int(value) and (low is None or value >= low) and (high is None or value <= high),
          f"{where}{key}", value, f"a whole number{'' if low is None else f' >= {low}'}"
                                  f"{'' if high is None else f' and <= {high}'}")
    return value


def _ids(meta, key, where):
    value = _field(meta, key, where)
    _need(isinstance(value, list) and all(_is_int(v) and 1 <= v <= MAX_OBJECT_ID for v in value),
          f"{where}{key}", value, f"a list of object ids 1..{MAX_OBJECT_ID}")
    return value


def check_metadata(meta, tensors):
    """Raise :class:`SchemaError` unless ``meta`` (the parsed JSON) and ``tensors`` make a session."""
    _need(isinstance(meta, dict), "the metadata", _Described(type(meta).__name__), "a JSON object")
    model = _dict(meta, "model")
    for key in ("family", "name", "model_id"):
        _need(isinstance(model.get(key, ""), str), f"model.{key}", model.get(key), "a string")
    _dict(meta, "config")
    size = _field(meta, "internal_size", "")
    _need(_is_int(size) and (size == -1 or size >= 16), "internal_size", size, "-1 or a whole number >= 16")
    _need(isinstance(_field(meta, "antialias", ""), bool), "antialias", meta["antialias"], "true or false")
    scales = meta.get("tta_scales", [])
    _need(isinstance(scales, list) and all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                           and math.isfinite(s) and TTA_SCALE_RANGE[0] <= s <= TTA_SCALE_RANGE[1]
                                           for s in scales),
          "tta_scales", scales, f"a list of numbers in {TTA_SCALE_RANGE[0]}..{TTA_SCALE_RANGE[1]}")
    _need(isinstance(meta.get("tta_flip", False), bool), "tta_flip", meta.get("tta_flip"), "true or false")
    keyframes = _field(meta, "keyframes", "")
    _need(isinstance(keyframes, list), "keyframes", keyframes, "a list")
    for n, entry in enumerate(keyframes):
        where = f"keyframes[{n}]."
        _need(isinstance(entry, dict), f"keyframes[{n}]", entry, "an object")
        _int(entry, "frame_index", where, low=0)
        _ids(entry, "object_ids", where)
        image, labels = tensors.get(f"keyframe{n}.image"), tensors.get(f"keyframe{n}.labels")
        _need(image is not None and image.dtype == torch.uint8 and image.dim() == 3 and image.shape[-1] == 3
              and 0 not in image.shape, f"tensor keyframe{n}.image", _shape(image), "uint8 [H,W,3]")
        _need(labels is not None and labels.dtype == torch.uint8 and tuple(labels.shape) == tuple(image.shape[:2]),
              f"tensor keyframe{n}.labels", _shape(labels), f"uint8 {list(image.shape[:2])} (the image's size)")
    passes = _dict(meta, "passes")
    for name, state in passes.items():
        where = f"passes.{name}."
        _need(name in PASS_NAMES, "a key of passes", name, " or ".join(PASS_NAMES))
        _need(isinstance(state, dict), f"passes.{name}", state, "an object")
        _need(_field(state, "direction", where) == name, f"{where}direction", state["direction"], repr(name))
        _int(state, "next_frame", where, low=-1, allow_none=True)  # a backward pass ends at -1
        hw = _field(state, "internal_hw", where)
        _need(isinstance(hw, list) and len(hw) == 2 and all(_is_int(v) and v > 0 for v in hw),
              f"{where}internal_hw", hw, "[height, width], two whole numbers > 0")
        _ids(state, "object_order", where)
        for key in ("preloaded", "reached"):
            value = _field(state, key, where)
            _need(isinstance(value, list) and all(_is_int(v) and v >= 0 for v in value), f"{where}{key}", value,
                  "a list of frame numbers")
        _dict(state, "engine", where)
    extra = meta.get("extra")
    _need(extra is None or isinstance(extra, dict), "extra", extra, "an object")


def check_checkpoint_extra(extra):
    """The progress a propagation checkpoint adds to the session (``extra``)."""
    _need(isinstance(extra, dict), "extra", extra, "an object")
    _dict(extra, "propagation", "extra.")
    phase = _dict(extra, "phase", "extra.")
    for name in PASS_NAMES:
        _need(phase.get(name) in PHASES, f"extra.phase.{name}", phase.get(name), " or ".join(PHASES))
    _int(extra, "done", "extra.", low=0)
    caller = extra.get("caller", {})
    _need(isinstance(caller, dict), "extra.caller", caller, "an object")


class _Described(str):
    """A description shown as it is (not quoted) in a message."""

    def __repr__(self):
        return str(self)


def _shape(tensor):
    return _Described("absent" if tensor is None else f"{str(tensor.dtype).replace('torch.', '')} "
                                                      f"{list(tensor.shape)}")
