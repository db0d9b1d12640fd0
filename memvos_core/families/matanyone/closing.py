"""The official MatAnyone script's preparation of a first-frame mask: a morphological closing
(dilate, then erode) with OpenCV's 10 x 10 elliptic structuring element and OpenCV's anchor
convention (the centre ``size // 2``, so an even size reaches one pixel further up and left),
which fills gaps and notches narrower than the element. Written with torch convolutions, so no
OpenCV is needed and it runs on the mask's device."""
import math

import torch
import torch.nn.functional as F

SIZE = 10  # the script's r_dilate = r_erode default


def ellipse(size=SIZE):
    """OpenCV's ``MORPH_ELLIPSE`` element of ``size x size`` (rows of an ellipse, rounded)."""
    r = size // 2
    k = torch.zeros(size, size)
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            dx = int(round(r * math.sqrt((r * r - dy * dy) / (r * r))))
            k[i, max(r - dx, 0):min(r + dx + 1, size)] = 1
    return k


def _hits(mask, kernel, outside):
    """Per pixel, how many of the element's pixels (anchored at ``size // 2``) cover the mask;
    pixels beyond the border count as ``outside``."""
    size = kernel.shape[0]
    lo, hi = size // 2, size - 1 - size // 2
    padded = F.pad(mask[None, None], (lo, hi, lo, hi), value=outside)
    return F.conv2d(padded, kernel[None, None].to(mask))[0, 0]


def close_mask(mask, size=SIZE):
    """``[H,W]`` mask -> 0/1 float ``[H,W]``: dilation of ``mask != 0``, then erosion of that
    (borders neither dilate nor erode, as OpenCV's defaults)."""
    kernel = ellipse(size)
    count = float(kernel.sum())
    dilated = (_hits((mask != 0).float(), kernel, 0.0) > 0.5).float()
    return (_hits(dilated, kernel, 1.0) > count - 0.5).to(mask.dtype)
