"""Reading checkpoint files safely and building the network they describe (spec §1)."""
import os
import pickle
import re

import torch

from ..error_text import error_detail


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file and what to do."""


SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")


def damaged_file_fix(release_url=None):
    """What to do about a weights file that is unreadable or holds impossible values: fetch a known
    release file again; any other file (a fine-tuned or converted one) only its owner can remake."""
    if release_url:
        return f"the file is damaged or incomplete; delete it and download it again: {release_url}"
    return ("the file is damaged or not a checkpoint of a supported family; re-export or copy it again, "
            "or pick another file")


def read_state_dict(path, fmt=None, label=None, release_url=None):
    """A flat ``name -> tensor`` mapping from ``.safetensors`` or ``.pth``, never running pickled code.

    ``fmt`` ("pth" or "safetensors") overrides the extension (temporary download files);
    ``label`` is the name used in error messages; ``release_url``: where the file is published,
    when it is a known release file (see :func:`damaged_file_fix`)."""
    path = os.fspath(path)
    label = label or path
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file {label!r} does not exist: check the path or download it first")
    fmt = fmt or ("safetensors" if path.endswith(SAFETENSORS_EXTENSIONS) else "pth")
    unreadable = f"weights file {label!r} could not be read as a {fmt} tensor file"
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file
            state = load_file(path, device="cpu")
        else:
            state = _torch_load(path)
    except pickle.UnpicklingError as exc:
        # torch's own text suggests retrying with weights_only=False; never pass that advice on.
        wanted = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if wanted:
            fix = (f"use the official file: {release_url}" if release_url else
                   "save only its tensors (a state dict) again, or pick another file")
            raise CheckpointError(
                f"weights file {label!r} holds pickled Python objects or code besides tensors (it asks "
                f"for {wanted.group(1)}): refused, nothing in it was run; {fix}") from None
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        raise CheckpointError(
            f"{unreadable} ({error_detail(detail.group(1)) if detail else 'not a checkpoint'}), refused: "
            f"{damaged_file_fix(release_url)}") from None
    except Exception as exc:  # torch/safetensors raise many types for corrupt or foreign files
        raise CheckpointError(
            f"{unreadable} ({type(exc).__name__}: {error_detail(exc)}): {damaged_file_fix(release_url)}") from None
    return unwrap_state_dict(state, label)


def _torch_load(path):
    """A ``.pth`` file's contents, its tensors mapped from the file where its format allows: read
    into memory, they are a second copy of the weights beside the network's own (the network copies
    them in), and the allocator keeps most of that copy after it is freed (a 237 MiB XMem took
    +391 MiB of RSS to load, +239 mapped). A legacy (pre-zip) file is read into memory."""
    # weights_only refuses every pickle that would build arbitrary objects or call functions.
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "zipfile" not in str(exc) and "mmap" not in str(exc):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def unwrap_state_dict(state, source="<memory>"):
    for entry in ("network", "model"):  # a full training checkpoint (XMem/Cutie), SAM 2's release files
        if isinstance(state, dict) and entry in state and isinstance(state[entry], dict):
            state = state[entry]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights file {source!r} is not a mapping of tensor names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


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
