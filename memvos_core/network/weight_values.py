"""Weights whose values cannot be a trained network's: refused at load, naming the tensor.

A checkpoint full of NaN (a training run that diverged) or scaled by 1e30 (a broken conversion)
loads and runs, and the objects silently vanish after the keyframe. Trained XMem and Cutie
weights, batch-norm statistics included, stay orders of magnitude below :data:`MAX_ABS_VALUE`.
"""
import math

import torch

from .checkpoint import CheckpointError, damaged_file_fix

MAX_ABS_VALUE = 1e6


def check_weight_values(network, name, release_url=None):
    """Raise :class:`CheckpointError` at the first floating-point tensor of ``network`` holding a
    NaN, an infinity or a value beyond ``MAX_ABS_VALUE``. One reduction per tensor (NaN propagates
    through min and max), no temporary copy: about a second for XMem's 62M values on one core.
    ``release_url``: where the file is published, when it is a known release file."""
    for key, tensor in network.state_dict().items():
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        low, high = (float(v) for v in torch.aminmax(tensor.detach()))
        if not (math.isfinite(low) and math.isfinite(high)):
            problem = "NaN or infinite values"
        elif max(-low, high) > MAX_ABS_VALUE:
            problem = f"values beyond +-{MAX_ABS_VALUE:g} (largest {max(-low, high):.3g})"
        else:
            continue
        raise CheckpointError(f"weights {name}: tensor {key} holds {problem}, which no trained network has: "
                              f"{damaged_file_fix(release_url)}")
