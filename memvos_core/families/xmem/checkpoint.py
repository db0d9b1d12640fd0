"""Recognising and building XMem from a checkpoint: dimensions from tensor shapes (the release
files store no configuration, spec §1.2), single-object files widened, every key matched strictly."""
import torch

from ...network.checkpoint import CheckpointError, strict_load
from ...network.synthetic import WeightRule
from ...network.xmem import XMemNetwork

PREFIXES = ("key_encoder.", "value_encoder.", "decoder.")
_SHAPE_KEYS = {
    "key_dim": "key_proj.key_proj.weight",
    "value_dim": "value_encoder.fuser.block2.conv2.weight",
}
_HIDDEN_KEY = "decoder.hidden_update.transform.weight"
_CONV1_KEY = "value_encoder.conv1.weight"
ADVICE = "Use an official XMem checkpoint (XMem.pth, XMem-s012.pth) or one trained with XMem's code"
# Random weights for tests and benchmarks (the parity fixtures were made with this rule).
SYNTHETIC_RULE = WeightRule(_CONV1_KEY, 16.0,
                            {"key_proj.key_proj.weight": 6.0, "decoder.pred.weight": 2.0})


def recognise(state):
    return int(any(k.startswith(PREFIXES) for k in state))


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


def build(state, source):
    model = XMemNetwork(**infer_dims(state, source))
    return strict_load(model, adapt_state_dict(state, model), source, "the XMem network", ADVICE)


def synthetic(variant=None):
    specs = [(k, tuple(v.shape), v.dtype) for k, v in XMemNetwork().state_dict().items()]
    return specs, SYNTHETIC_RULE
