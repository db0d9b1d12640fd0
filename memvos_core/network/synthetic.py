"""Deterministic random XMem weights, by the rule the parity fixtures were made with.

Each tensor depends only on its own key: a CPU generator seeded with the CRC-32 of the key
draws one standard normal tensor ``z``, transformed by the kind of parameter. Used by the
tests (against the golden fixtures) and by benchmarks, where no trained weights exist.
"""
import math
import zlib

import torch

from .xmem import XMemNetwork

MASK_INPUT_GAIN = 16.0
KEY_GAINS = {"key_proj.key_proj.weight": 6.0, "decoder.pred.weight": 2.0}


def _tensor_for(key, shape, dtype, bn_prefixes):
    prefix, _, leaf = key.rpartition(".")
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=dtype)
    gen = torch.Generator(device="cpu").manual_seed(zlib.crc32(key.encode("utf-8")))
    z = torch.randn(shape, generator=gen, dtype=torch.float32)
    if prefix in bn_prefixes:
        t = {"weight": lambda: 1 + 0.1 * z, "bias": lambda: 0.1 * z,
             "running_mean": lambda: 0.1 * z, "running_var": lambda: torch.exp(0.2 * z)}[leaf]()
    elif len(shape) >= 2:
        t = z * (1.0 / math.sqrt(math.prod(shape[1:])))  # multiply, as the rule does, for identical rounding
    elif leaf == "bias":
        t = 0.05 * z
    else:
        t = z
    if key == "value_encoder.conv1.weight" and len(shape) == 4 and shape[1] > 3:
        t[:, 3:] *= MASK_INPUT_GAIN
    if key in KEY_GAINS:
        t = t * KEY_GAINS[key]
    return t.to(dtype)


def synthetic_state_dict(specs=None):
    """specs: iterable of ``(key, shape, dtype)``; default: the default XMem model's keys."""
    if specs is None:
        specs = [(k, tuple(v.shape), v.dtype) for k, v in XMemNetwork().state_dict().items()]
    specs = [(k, tuple(int(s) for s in shape), d) for k, shape, d in specs]
    bn_prefixes = {k[: -len(".running_mean")] for k, _, _ in specs if k.endswith(".running_mean")}
    return {k: _tensor_for(k, shape, d, bn_prefixes) for k, shape, d in specs}


def fingerprint(t):
    x = t.detach().to(torch.float64).flatten()
    return {"sum": float(x.sum()), "abs_sum": float(x.abs().sum()), "first": [float(v) for v in x[:3]]}
