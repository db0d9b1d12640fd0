"""Recognising and building MatAnyone / MatAnyone 2 from a checkpoint.

Both releases hold the same 562 keys (Cutie's, minus its stride-4 head, plus the full-resolution
decoder stages, the alpha and segmentation heads and the uncertainty head ``temp_sparity``), so
they are told from Cutie by those keys and from each other only by file name."""
import logging

import torch

from ...network.checkpoint import CheckpointError, strict_load
from .network import MatAnyoneNetwork

log = logging.getLogger(__name__)

# Keys only a MatAnyone checkpoint has: the uncertainty head and the alpha head.
MARKER_PREFIXES = ("temp_sparity.", "mask_decoder.pred_mat.")
# The training-only head, and normalisation constants some files may carry.
_IGNORED = ("aux_computer.", "pixel_mean", "pixel_std")
# Single-object inputs widened by a zero "others" channel (see network.py).
_SINGLE_OBJECT = ("mask_encoder.conv1.weight", "pixel_fuser.sensory_compress.weight")
_SHAPE_KEYS = {
    "pixel_dim": "pix_feat_proj.weight",
    "key_dim": "key_proj.key_proj.weight",
    "value_dim": "mask_encoder.fuser.block2.conv2.weight",
    "embed_dim": "pixel_fuser.fuser.block2.conv2.weight",
    "num_queries": "object_transformer.query_init.weight",
    "ff_dim": "object_transformer.blocks.0.ffn.linear1.weight",
}
LICENCE = ("MatAnyone and MatAnyone 2 weights are under the S-Lab License 1.0: non-commercial use "
           "only (https://github.com/pq-yang/MatAnyone/blob/main/LICENSE)")
ADVICE = ("Use an official MatAnyone checkpoint (matanyone.pth, matanyone2.pth) unchanged, or one "
          "trained with MatAnyone's code")


def is_matanyone(state):
    return any(k.startswith(MARKER_PREFIXES) for k in state)


def infer_matanyone_dims(state, source="<memory>"):
    missing = [k for k in (*_SHAPE_KEYS.values(), "mask_decoder.pred_mat.weight",
                           "temp_sparity.conv1x1_v2.weight") if k not in state]
    if missing:
        raise CheckpointError(
            f"weights file {source!r} is not a complete MatAnyone checkpoint (missing "
            f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}). {ADVICE}")
    dims = {name: int(state[key].shape[0]) for name, key in _SHAPE_KEYS.items()}
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("object_transformer.blocks.")}
    dims["num_blocks"] = max(blocks) + 1 if blocks else 0
    return dims


def adapt_matanyone_state(state, model):
    state = {k: v for k, v in state.items() if not k.startswith(_IGNORED)}
    expected = model.state_dict()
    for key in _SINGLE_OBJECT:
        w = state.get(key)
        if w is not None and w.dim() == 4 and w.shape[1] + 1 == expected[key].shape[1]:
            state[key] = torch.cat([w, torch.zeros_like(w[:, :1])], 1)
    for key, buf in expected.items():
        if key not in state and key.endswith(("num_batches_tracked", "inv_freq")):
            state[key] = buf.clone()
    return state


def build_matanyone(state, name):
    try:
        model = MatAnyoneNetwork(**infer_matanyone_dims(state, name))
    except (TypeError, RuntimeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"weights file {name!r} has MatAnyone keys with impossible shapes "
                              f"({exc}). {ADVICE}") from None
    model = strict_load(model, adapt_matanyone_state(state, model), name, "the MatAnyone network", ADVICE)
    log.warning("loaded %s: %s", name, LICENCE)
    return model
