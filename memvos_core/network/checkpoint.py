"""Reading checkpoint files safely and building the network they describe (spec §1)."""
import os
import pickle
import re

import torch

from .xmem import XMemNetwork

_SHAPE_KEYS = {
    "key_dim": "key_proj.key_proj.weight",
    "value_dim": "value_encoder.fuser.block2.conv2.weight",
}
_HIDDEN_KEY = "decoder.hidden_update.transform.weight"
_CONV1_KEY = "value_encoder.conv1.weight"


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file and what to do."""


SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")


def read_state_dict(path, fmt=None, label=None):
    """A flat ``name -> tensor`` mapping from ``.safetensors`` or ``.pth``, never running pickled code.

    ``fmt`` ("pth" or "safetensors") overrides the extension (temporary download files);
    ``label`` is the name used in error messages."""
    path = os.fspath(path)
    label = label or path
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file {label!r} does not exist: check the path or download it first")
    fmt = fmt or ("safetensors" if path.endswith(SAFETENSORS_EXTENSIONS) else "pth")
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file
            state = load_file(path, device="cpu")
        else:
            # weights_only refuses every pickle that would build arbitrary objects or call functions.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text suggests retrying with weights_only=False; never pass that advice on.
        wanted = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if wanted:
            raise CheckpointError(
                f"weights file {label!r} holds pickled Python objects or code besides tensors (it asks "
                f"for {wanted.group(1)}): refused, nothing in it was run. Use the official file") from None
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        raise CheckpointError(
            f"weights file {label!r} could not be read as a {fmt} tensor file "
            f"({detail.group(1).strip() if detail else 'not a checkpoint'}): it is corrupt or not a "
            "checkpoint at all (a web page?); refused, delete it and download it again") from None
    except Exception as exc:  # torch/safetensors raise many types for corrupt or foreign files
        raise CheckpointError(
            f"weights file {label!r} could not be read as a {fmt} tensor file ({type(exc).__name__}: "
            f"{_first_line(exc)}): it is truncated, corrupt or not a checkpoint; delete it and "
            "download it again") from None
    return unwrap_state_dict(state, label)


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "no detail"


def unwrap_state_dict(state, source="<memory>"):
    if isinstance(state, dict) and "network" in state and isinstance(state["network"], dict):
        state = state["network"]  # a full training checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights file {source!r} is not a mapping of tensor names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def infer_dims(state, source="<memory>"):
    """Network dimensions from tensor shapes; the checkpoint stores no config (spec §1.2)."""
    missing = [k for k in (*_SHAPE_KEYS.values(), _CONV1_KEY) if k not in state]
    if missing:
        raise CheckpointError(
            f"weights file {source!r} is not an XMem checkpoint (missing {', '.join(missing)}); "
            "pick XMem.pth or XMem-s012.pth from XMem's release")
    dims = {name: int(state[key].shape[0]) for name, key in _SHAPE_KEYS.items()}
    dims["hidden_dim"] = int(state[_HIDDEN_KEY].shape[0]) // 3 if _HIDDEN_KEY in state else 0
    return dims


def adapt_state_dict(state, model):
    """Fill the gaps that are harmless at evaluation: single-object conv1, BN step counters."""
    state = dict(state)
    w = state.get(_CONV1_KEY)
    if w is not None and w.dim() == 4 and w.shape[1] == 4:
        # A single-object model: the "other objects" input channel is zero at evaluation.
        state[_CONV1_KEY] = torch.cat([w, torch.zeros_like(w[:, :1])], 1)
    for key, buf in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(buf)
    return state


XMEM_PREFIXES = ("key_encoder.", "value_encoder.", "decoder.")
CUTIE_PREFIXES = ("pixel_encoder.", "mask_encoder.", "mask_decoder.", "object_transformer.")
KNOWN_FILES = "XMem.pth, XMem-s012.pth, cutie-base-mega.pth, cutie-small-mega.pth, matanyone.pth or matanyone2.pth"


def detect_family(state, source="<memory>"):
    """``"xmem"``, ``"cutie"`` or ``"matanyone"``, from the module names the keys start with."""
    xmem = any(k.startswith(XMEM_PREFIXES) for k in state)
    cutie = any(k.startswith(CUTIE_PREFIXES) for k in state)
    if xmem and cutie:
        raise CheckpointError(
            f"weights file {source!r} mixes XMem keys (key_encoder.*) and Cutie keys (pixel_encoder.*): "
            f"it is no official checkpoint; use {KNOWN_FILES}")
    if not (xmem or cutie):
        raise CheckpointError(
            f"weights file {source!r} is not an XMem checkpoint, nor a Cutie one (none of its keys starts "
            f"with key_encoder. or pixel_encoder.); pick {KNOWN_FILES}")
    if cutie:
        from ..families.matanyone.checkpoint import recognise  # Cutie's modules plus its own heads
        if recognise(state):
            return "matanyone"
    return "cutie" if cutie else "xmem"


def load_network(source, *, source_name=None):
    """Build the network a checkpoint (path or state dict) describes, XMem or Cutie (told apart by
    its keys), strictly; eval mode, CPU, fp32."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        state = read_state_dict(source)
    else:
        name = source_name or "<state dict>"
        state = unwrap_state_dict(source, name)
    family = detect_family(state, name)
    if family == "matanyone":
        from ..families.matanyone.checkpoint import build_matanyone
        return build_matanyone(state, name)
    if family == "cutie":
        from .cutie_checkpoint import build_cutie
        return build_cutie(state, name)
    model = XMemNetwork(**infer_dims(state, name))
    return strict_load(model, adapt_state_dict(state, model), name, "the XMem network",
                       "Use an official XMem checkpoint (XMem.pth, XMem-s012.pth) or one trained with XMem's code")


def strict_load(model, state, name, what, advice):
    """Load ``state`` into ``model`` with every key and shape matching, or explain what differs."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
        if wrong:
            parts.append(f"{len(wrong)} wrong shapes ({_few(wrong)})")
        raise CheckpointError(f"weights file {name!r} does not match {what}: {'; '.join(parts)}. {advice}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return model.eval()


def _few(items, n=4):
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")
