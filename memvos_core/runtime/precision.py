"""Numeric precision of a run: fp32, or fp16/bf16 through autocast."""
from contextlib import nullcontext

import torch

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_context(device, precision):
    """Autocast for fp16/bf16 on accelerators; fp32 (and CPU) run without it."""
    if precision == "fp32":
        return nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    if device_type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    return torch.autocast(device_type, dtype=PRECISIONS[precision])
