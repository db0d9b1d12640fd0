"""What a compositor gets besides the mattes: the foreground colour that goes with them
(the frame itself, or decontaminated at soft edges; straight or premultiplied), packed as the
RGBA of a ProRes 4444 frame or the RGB of an EXR. Shared by Save Masks and the command line.
"""
import numpy as np
import torch

from ..ops.foreground import estimate_foreground_chunk

FOREGROUNDS = ("none", "straight", "premultiplied", "clean straight", "clean premultiplied")


def check_foreground(foreground):
    if foreground not in FOREGROUNDS:
        raise ValueError(f"foreground {foreground!r} is not one of {', '.join(FOREGROUNDS)}")
    return foreground


def foreground_colour(frame, alpha, foreground, device=None):
    """The colour to write with ``alpha`` (float ``[H,W]``) for ``frame`` (float ``[H,W,3]``
    0..1): the frame (``straight``), its foreground colour estimated at soft edges (``clean``),
    either multiplied by the alpha for the ``premultiplied`` modes. None for ``none``. The
    estimate runs on ``device`` (default: the frame's); the result is on the CPU."""
    check_foreground(foreground)
    if foreground == "none":
        return None
    device = device or frame.device
    rgb = frame.to(device).float()
    a = alpha.to(device).float().clamp(0, 1)
    if foreground.startswith("clean"):
        fg, _ = estimate_foreground_chunk(rgb.permute(2, 0, 1)[None], a[None, None])
        rgb = fg[0].permute(1, 2, 0)
    if foreground.endswith("premultiplied"):
        rgb = rgb * a.unsqueeze(-1)
    return rgb.cpu()


def rgba16(colour, alpha):
    """uint16 ``[H,W,4]`` for a ProRes 4444 frame: ``colour`` (float ``[H,W,3]``, or None for
    the matte as grey) and ``alpha`` (float ``[H,W]``) in 0..1."""
    alpha = alpha.float().clamp(0, 1).cpu()
    rgb = alpha.unsqueeze(-1).expand(*alpha.shape, 3) if colour is None else colour.float().clamp(0, 1).cpu()
    rgba = torch.cat([rgb, alpha.unsqueeze(-1)], -1)
    return (rgba * 65535).round().to(torch.int32).numpy().astype(np.uint16)


__all__ = ["FOREGROUNDS", "check_foreground", "foreground_colour", "rgba16"]
