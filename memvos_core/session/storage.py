"""Saving a session to ``.safetensors`` (tensors) with JSON metadata, and loading it back.

The file never holds code: tensors plus one JSON string. A file made by another model, another
memory configuration or another format version is refused with a message saying why.
"""
import json
import os

from safetensors import safe_open
from safetensors.torch import save_file

from ..media_io.atomic_file import write_atomic
from ..config import MemoryConfig
from ..families.registry import FAMILY_OF_UNMARKED_FILES
from ..media_io.json_input import JSONInputError, parse_json
from .directional import PassState
from .file_schema import SchemaError, check_metadata
from .keyframes import Keyframe

FORMAT = "memvos-session"
STATE_FORMAT = "memvos-pass-state"
VERSION = 1


class SessionFileError(ValueError):
    pass


def save_session(session, path, extra=None, what=None):
    """Write atomically: a temporary file in the same folder, then a rename. ``extra``: JSON-able
    metadata stored alongside (a propagation checkpoint's progress), read back by :func:`read_session`.
    A disk that refuses (full, read-only, name too long) is one :class:`SessionFileError` line,
    starting with ``what`` (the input that named the file) when given."""
    tensors, keyframes = {}, []
    for n, kf in enumerate(session.keyframes):
        tensors[f"keyframe{n}.image"] = kf.image
        tensors[f"keyframe{n}.labels"] = kf.labels
        keyframes.append({"frame_index": kf.frame_index, "object_ids": list(kf.object_ids)})
    passes = {}
    for name, state in (("forward", session.forward_state), ("backward", session.backward_state)):
        if state is not None:
            tensors.update(_state_tensors(name, state))
            passes[name] = state.meta()
    meta = {"format": FORMAT, "version": VERSION, "model": session.model.describe(),
            "config": session.config.to_dict(), "internal_size": session.internal_size,
            "antialias": session.antialias, "tta_scales": list(session.tta_scales),
            "tta_flip": session.tta_flip, "keyframes": keyframes, "passes": passes}
    if extra is not None:
        meta["extra"] = extra
    return _write(path, tensors, meta, what)


def _state_tensors(prefix, state):
    return {f"{prefix}.{key}": t for key, t in state.tensors.items()}


def _write(path, tensors, meta, what=None):
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    path = os.fspath(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError:
        pass  # write_atomic reports the folder's problem in one line
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata={"memvos": json.dumps(meta)}), what=what,
                 error=SessionFileError)
    return path


def save_pass_state(path, state, extra=None):
    """One pass's memory state alone (no keyframes, no settings), written atomically: what a run
    keeps at each keyframe for a later run of a span (:mod:`.keyframe_states`)."""
    meta = {"format": STATE_FORMAT, "version": VERSION, "pass": state.meta(), "extra": extra}
    return _write(path, _state_tensors("state", state), meta, what="memory state")


def read_pass_state(path, device="cpu"):
    """``(PassState, extra)`` of a :func:`save_pass_state` file, its tensors on ``device``."""
    path = os.fspath(path)
    try:
        with safe_open(path, framework="pt", device=str(device)) as f:
            meta = json.loads((f.metadata() or {})["memvos"])
            tensors = {k[len("state."):]: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != STATE_FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"format {meta.get('format')} version {meta.get('version')}")
        return PassState.from_meta(meta["pass"], tensors), meta.get("extra")
    except Exception as exc:
        raise SessionFileError(f"the memory state {path!r} could not be read ({exc}): it is damaged; "
                               "propagate with rerun = exact") from None


def read_session(path, model, config=None):
    """``(fields, extra)`` of a session file for ``model``: ``Session(**fields)`` is the session
    (:meth:`Session.load`), ``extra`` what ``save_session(..., extra=...)`` stored (a propagation
    checkpoint's progress). ``config`` (optional) must equal the saved settings."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SessionFileError(f"session file {path!r} does not exist")
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get("memvos")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise SessionFileError(f"session file {path!r} could not be read ({exc}); it is not a MemVOS session "
                               "or it is damaged") from None
    if raw is None:
        raise SessionFileError(f"{path!r} is a safetensors file but not a MemVOS session")
    damaged = (f"session file {path!r} is damaged ({{}}): save the session again, or for a checkpoint "
               "run again without --resume")
    try:
        meta = parse_json(raw, "its metadata")
    except JSONInputError as exc:
        raise SessionFileError(damaged.format(exc)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        meta = meta if isinstance(meta, dict) else {}
        raise SessionFileError(f"session file {path!r} has format {meta.get('format')} version "
                               f"{meta.get('version')}; this version reads {FORMAT} version {VERSION}")
    try:
        check_metadata(meta, tensors)
        saved_config = MemoryConfig.from_dict(meta["config"])
    except (SchemaError, TypeError, ValueError) as exc:
        raise SessionFileError(damaged.format(exc)) from None
    saved_model, ours = meta["model"], model.describe()
    saved_family = saved_model.get("family", FAMILY_OF_UNMARKED_FILES)
    if saved_family != ours["family"]:
        raise SessionFileError(
            f"session file {path!r} belongs to the {saved_family} model family "
            f"({saved_model.get('name')}), but the loaded model is {ours['family']} ({ours['name']}): "
            "load the weights it was made with")
    if saved_model.get("model_id") != ours["model_id"]:
        raise SessionFileError(
            f"session file {path!r} was made with model {saved_model.get('name')} "
            f"(id {saved_model.get('model_id')}), not the loaded {ours['name']} (id {ours['model_id']}): "
            "load the same weights it was made with")
    if config is not None and config != saved_config:
        changed = sorted(k for k, v in config.to_dict().items() if meta["config"].get(k) != v)
        raise SessionFileError(f"session file {path!r} was made with other memory settings ({', '.join(changed)}): "
                               "use the saved settings or start a new session")
    keyframes = tuple(Keyframe(k["frame_index"], tensors[f"keyframe{n}.image"], tensors[f"keyframe{n}.labels"],
                               tuple(k["object_ids"])) for n, k in enumerate(meta["keyframes"]))
    states = {}
    for name, pmeta in meta["passes"].items():
        prefix = f"{name}."
        states[name] = PassState.from_meta(pmeta, {k[len(prefix):]: v for k, v in tensors.items()
                                                   if k.startswith(prefix)})
    fields = {"model": model, "config": saved_config, "internal_size": meta["internal_size"],
              "antialias": meta["antialias"], "tta_scales": tuple(meta.get("tta_scales", ())),
              "tta_flip": meta.get("tta_flip", False), "keyframes": keyframes,
              "forward_state": states.get("forward"), "backward_state": states.get("backward")}
    return fields, meta.get("extra")
