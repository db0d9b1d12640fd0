"""Deterministic random MatAnyone weights, by the rule the MatAnyone parity fixtures were made
with: Cutie's rule (``memvos_core.network.synthetic``) on the single-object release layout, plus
an alpha head whose raw output straddles the clamp to [0, 1] and an uncertainty head whose gate
favours the memory readout without ignoring the previous mask value."""
from ...network.synthetic import WeightRule, synthetic_state_dict
from ..cutie.checkpoint import AUX_SPECS as CUTIE_AUX_SPECS
from .checkpoint import _SINGLE_OBJECT
from .network import MatAnyoneNetwork

_AUX = [f"object_transformer.mask_pred.{i}.1" for i in range(4)]
MATANYONE_RULE = WeightRule(
    "mask_encoder.conv1.weight", 8.0,
    {"key_proj.key_proj.weight": 6.0, **{f"{m}.weight": 0.3 for m in _AUX},
     "mask_decoder.pred_mat.weight": 0.7, "temp_sparity.conv3x3_out.weight": -2.0},
    {**{f"{m}.bias": 40.0 for m in _AUX}, "mask_decoder.pred_mat.bias": 1.0})


def release_specs():
    """``(key, shape, dtype)`` of a release file: single-object inputs, training head included."""
    specs = []
    for key, t in MatAnyoneNetwork().state_dict().items():
        shape = tuple(t.shape)
        if key in _SINGLE_OBJECT:
            shape = (shape[0], shape[1] - 1, *shape[2:])
        specs.append((key, shape, t.dtype))
    return specs + list(CUTIE_AUX_SPECS)


def synthetic(variant=None):
    """``(specs, rule)`` for the family registry: one variant."""
    return release_specs(), MATANYONE_RULE


def synthetic_matanyone_state_dict():
    return synthetic_state_dict(family="matanyone")
