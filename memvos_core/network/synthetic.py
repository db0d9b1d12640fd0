"""Deterministic random weights, by the rules the XMem and Cutie parity fixtures were made with.

Each tensor depends only on its own key: a CPU generator seeded with the CRC-32 of the key
draws one standard normal tensor ``z``, transformed by the kind of parameter (BatchNorm,
LayerNorm, weight matrix, bias), then a few named tensors are scaled or shifted so that the
random network behaves well in float32 (sharp memory attention, moderate logits). Positional
encoding buffers and BatchNorm counters are not random. Used by the tests (against the golden
fixtures) and by benchmarks, where no trained weights exist.
"""
import math
import zlib
from dataclasses import dataclass, field

import torch

from .xmem import XMemNetwork


@dataclass(frozen=True)
class WeightRule:
    mask_input_key: str             # the mask encoder's first conv: mask channels get a gain
    mask_input_gain: float
    gains: dict                     # key -> factor
    offsets: dict = field(default_factory=dict)  # key -> added constant, after the gains


MASK_INPUT_GAIN = 16.0
KEY_GAINS = {"key_proj.key_proj.weight": 6.0, "decoder.pred.weight": 2.0}
XMEM_RULE = WeightRule("value_encoder.conv1.weight", MASK_INPUT_GAIN, KEY_GAINS)

_CUTIE_AUX = [f"object_transformer.mask_pred.{i}.1" for i in range(4)]
CUTIE_RULES = {
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
CUTIE_AUX_SPECS = [("aux_computer.sensory_aux.projection.weight", (257, 256, 1, 1), torch.float32),
                   ("aux_computer.sensory_aux.projection.bias", (257,), torch.float32)]
PE_TEMPERATURE = 128


def _tensor_for(key, shape, dtype, bn_prefixes, ln_prefixes, rule):
    prefix, _, leaf = key.rpartition(".")
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=dtype)
    if leaf == "inv_freq":
        dim = 2 * shape[0]
        return (1.0 / (PE_TEMPERATURE ** (torch.arange(0, dim, 2).float() / dim))).to(dtype)
    gen = torch.Generator(device="cpu").manual_seed(zlib.crc32(key.encode("utf-8")))
    z = torch.randn(shape, generator=gen, dtype=torch.float32)
    if prefix in bn_prefixes:
        t = {"weight": lambda: 1 + 0.1 * z, "bias": lambda: 0.1 * z,
             "running_mean": lambda: 0.1 * z, "running_var": lambda: torch.exp(0.2 * z)}[leaf]()
    elif prefix in ln_prefixes and leaf in ("weight", "bias"):
        t = 1 + 0.1 * z if leaf == "weight" else 0.1 * z
    elif len(shape) >= 2:
        t = z * (1.0 / math.sqrt(math.prod(shape[1:])))  # multiply, as the rule does, for identical rounding
    elif leaf == "bias" or leaf.endswith("_bias"):
        t = 0.05 * z
    else:
        t = z
    if key == rule.mask_input_key and len(shape) == 4 and shape[1] > 3:
        t[:, 3:] *= rule.mask_input_gain
    if key in rule.gains:
        t = t * rule.gains[key]
    if key in rule.offsets:
        t = t + rule.offsets[key]
    return t.to(dtype)


def synthetic_state_dict(specs=None, family="xmem", variant=None, rule=None):
    """specs: iterable of ``(key, shape, dtype)``; default: the default model's keys of
    ``family`` (``"xmem"``, or ``"cutie"`` with ``variant`` ``"base"``/``"small"``, whose
    default specs include the training-only ``aux_computer`` keys of the release files).
    ``rule``: another family's :class:`WeightRule`, applied to ``specs`` (both required)."""
    if rule is not None:
        pass
    elif family == "cutie":
        variant = variant or "base"
        if specs is None:
            from .cutie import CutieNetwork
            specs = [(k, tuple(v.shape), v.dtype) for k, v in CutieNetwork(variant).state_dict().items()]
            specs += CUTIE_AUX_SPECS
        rule = CUTIE_RULES[variant]
    elif family == "xmem":
        if specs is None:
            specs = [(k, tuple(v.shape), v.dtype) for k, v in XMemNetwork().state_dict().items()]
        rule = XMEM_RULE
    else:
        raise ValueError(f"model family {family!r} is not one of xmem, cutie")
    specs = [(k, tuple(int(s) for s in shape), d) for k, shape, d in specs]
    bn_prefixes = {k[: -len(".running_mean")] for k, _, _ in specs if k.endswith(".running_mean")}
    # LayerNorm: a 1-D weight whose module keeps no running statistics (its bias goes with it).
    ln_prefixes = {k[: -len(".weight")] for k, shape, _ in specs
                   if k.endswith(".weight") and len(shape) == 1 and k[: -len(".weight")] not in bn_prefixes}
    return {k: _tensor_for(k, shape, d, bn_prefixes, ln_prefixes, rule) for k, shape, d in specs}


def fingerprint(t):
    x = t.detach().to(torch.float64).flatten()
    return {"sum": float(x.sum()), "abs_sum": float(x.abs().sum()), "first": [float(v) for v in x[:3]]}
