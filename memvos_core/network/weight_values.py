"""Weights whose values cannot be a trained network's: refused at load, naming the tensor.

A checkpoint full of NaN (a training run that diverged) or scaled by 1e30 (a broken conversion)
loads and runs, and the objects silently vanish after the keyframe. Trained XMem and Cutie
weights, batch-norm statistics included, stay orders of magnitude below :data:`MAX_ABS_VALUE`.
"""
import torch

from .checkpoint import CheckpointError

MAX_ABS_VALUE = 1e6
CHUNK = 1 << 22  # elements checked at a time: no full-size temporary for the largest tensor


def check_weight_values(network, name):
    """Raise :class:`CheckpointError` at the first floating-point tensor of ``network`` holding a
    NaN, an infinity or a value beyond ``MAX_ABS_VALUE``."""
    for key, tensor in network.state_dict().items():
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        flat = tensor.detach().reshape(-1)
        for start in range(0, flat.numel(), CHUNK):
            part = flat[start:start + CHUNK].float()
            if not bool(torch.isfinite(part).all()):
                problem = "NaN or infinite values"
            elif float(part.abs().max()) > MAX_ABS_VALUE:
                problem = f"values beyond +-{MAX_ABS_VALUE:g} (largest {float(part.abs().max()):.3g})"
            else:
                continue
            raise CheckpointError(f"weights {name}: tensor {key} holds {problem}, which no trained network has: "
                                  "the file is damaged or not a trained checkpoint; download it again or use "
                                  "another checkpoint")
