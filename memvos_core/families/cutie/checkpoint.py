"""Building a Cutie network from a checkpoint: dimensions from tensor shapes (the release files
store no configuration, cutie-spec §2.1), the gaps that are harmless at evaluation filled,
every other key matched strictly."""
import re

import torch

from ...network.checkpoint import CheckpointError, strict_load
from ...network.cutie import VARIANTS, CutieNetwork
from ...network.synthetic import WeightRule
from ..base import padded_keys

_WIDTH_TO_VARIANT = {ms_dims[0]: name for name, (_, ms_dims) in VARIANTS.items()}
_SHAPE_KEYS = {
    "pixel_dim": "pix_feat_proj.weight",
    "key_dim": "key_proj.key_proj.weight",
    "value_dim": "mask_encoder.fuser.block2.conv2.weight",
    "embed_dim": "pixel_fuser.fuser.block2.conv2.weight",
    "num_queries": "object_transformer.query_init.weight",
    "ff_dim": "object_transformer.blocks.0.ffn.linear1.weight",
}
_SENSORY_KEY = "mask_encoder.sensory_update.transform.weight"
_UP_KEYS = ("mask_decoder.up_16_8.out_conv.conv1.weight", "mask_decoder.up_8_4.out_conv.conv1.weight")
_MASK_CONV = "mask_encoder.conv1.weight"
_COMPRESS = "pixel_fuser.sensory_compress.weight"
# Training-only head, and normalisation constants some older files carry: not part of inference.
_IGNORED = ("aux_computer.", "pixel_mean", "pixel_std")
PREFIXES = ("pixel_encoder.", "mask_encoder.", "mask_decoder.", "object_transformer.")
ADVICE = ("Use an official Cutie checkpoint (cutie-base-mega.pth, cutie-small-mega.pth) or one "
          "trained with Cutie's code")


def recognise(state):
    return int(any(k.startswith(PREFIXES) for k in state))


def infer_cutie_dims(state, source="<memory>", what="Cutie", advice=ADVICE):
    """``what``/``advice``: the family named in errors (MatAnyone shares these modules)."""
    needed = [*_SHAPE_KEYS.values(), _SENSORY_KEY, *_UP_KEYS, _MASK_CONV]
    missing = [k for k in needed if k not in state]
    if missing:
        raise CheckpointError(
            f"weights file {source!r} is not a complete {what} checkpoint (missing {', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}). {advice}")
    width = int(state["pix_feat_proj.weight"].shape[1])
    if width not in _WIDTH_TO_VARIANT:
        raise CheckpointError(
            f"weights file {source!r} has a {what} pixel encoder of width {width}, neither base (1024) "
            f"nor small (256). {advice}")
    dims = {name: int(state[key].shape[0]) for name, key in _SHAPE_KEYS.items()}
    dims["variant"] = _WIDTH_TO_VARIANT[width]
    dims["sensory_dim"] = int(state[_SENSORY_KEY].shape[0]) // 3
    dims["up_dims"] = (dims["embed_dim"], *(int(state[k].shape[0]) for k in _UP_KEYS))
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"object_transformer\.blocks\.(\d+)\.", k))}
    dims["num_blocks"] = max(blocks) + 1 if blocks else 0
    return dims


def adapt_cutie_state(state, model):
    """Drop what inference does not use; widen a single-object checkpoint's mask inputs by the
    zero "others" channel (the reference widens them randomly by default, spec §2.1.4: zeros give
    what a missing input contributes); fill absent BN counters and positional-encoding buffers
    (both deterministic)."""
    state = {k: v for k, v in state.items() if not k.startswith(_IGNORED)}
    expected = model.state_dict()
    for key in (_MASK_CONV, _COMPRESS):
        w = state.get(key)
        if w is not None and key in expected and w.dim() == 4 and w.shape[1] + 1 == expected[key].shape[1]:
            state[key] = torch.cat([w, torch.zeros_like(w[:, :1])], 1)
    for key, buf in expected.items():
        if key not in state and key.endswith(("num_batches_tracked", "inv_freq")):
            state[key] = buf.clone()
    return state


def build_cutie(state, name):
    model = CutieNetwork(**infer_cutie_dims(state, name))
    return strict_load(model, adapt_cutie_state(state, model), name, "the Cutie network", ADVICE)


# Random weights for tests and benchmarks (the parity fixtures were made with these rules).
_CUTIE_AUX = [f"object_transformer.mask_pred.{i}.1" for i in range(4)]
SYNTHETIC_RULES = {
    # Auxiliary mask logits far above where the float32 sigmoid saturates: every foreground
    # decision of the object transformer is an exact tie (cutie fixture README, "Hazards").
    "base": WeightRule("mask_encoder.conv1.weight", 8.0,
                       {"key_proj.key_proj.weight": 6.0, "mask_decoder.pred.weight": 1.0,
                        **{f"{m}.weight": 0.3 for m in _CUTIE_AUX}},
                       {f"{m}.bias": 40.0 for m in _CUTIE_AUX}),
    "small": WeightRule("mask_encoder.conv1.weight", 8.0,
                        {"key_proj.key_proj.weight": 4.0, "mask_decoder.pred.weight": 1.0,
                         **{f"{m}.weight": 0.3 for m in _CUTIE_AUX}},
                        {**{f"{m}.bias": 40.0 for m in _CUTIE_AUX}, "mask_decoder.pred.bias": -3.0}),
}
# The training-only head of the release files (dropped when loading), generated like the rest.
AUX_SPECS = [("aux_computer.sensory_aux.projection.weight", (257, 256, 1, 1), torch.float32),
                   ("aux_computer.sensory_aux.projection.bias", (257,), torch.float32)]


def synthetic(variant):
    specs = [(k, tuple(v.shape), v.dtype) for k, v in CutieNetwork(variant).state_dict().items()]
    return specs + AUX_SPECS, SYNTHETIC_RULES[variant]


def encode_keys(network, images):
    """Suggest Frames' keys: padded as Cutie pads (the 0..1 image with zeros, then normalised)."""
    return padded_keys(network, images, rgb_zero=True)
