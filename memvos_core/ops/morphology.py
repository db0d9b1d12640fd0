"""Binary/grey morphology primitives on ``[B,H,W]`` tensors, built from whole-tensor torch ops.

* Connected components: every foreground pixel starts with a unique label; labels are lowered to
  the minimum over each horizontal run, then each vertical run (a segment-wise ``scatter_reduce``,
  so one sweep crosses a whole run however long), plus the four diagonal neighbours for
  8-connectivity; each lowered label is also handed to the pixel the old label points at and
  pointers are followed to their end (label equivalence), until nothing changes. Sweeps grow
  roughly with the log of a region's complexity, not with its size.
* Disc dilation (flat, grey-level): the max over a disc of radius r is the max over rows
  ``dy in [-r, r]`` of a horizontal window max of half-width ``floor(sqrt(r^2 - dy^2))``; window
  maxima come from a doubling (sparse) table, so the cost is O(r) per pixel, not O(r^2).
"""
from math import isqrt

import torch
import torch.nn.functional as F


def _run_ids(fg):
    """Flat id of each pixel's horizontal run of foreground; background pixels all get the
    last id (a slot that only ever holds "no label")."""
    b, h, w = fg.shape
    # A background pixel bumps the counter, so each run of foreground shares one count.
    run = torch.cumsum(~fg, dim=-1) + torch.arange(b * h, device=fg.device).view(b, h, 1) * (w + 1)
    dummy = b * h * (w + 1)
    return torch.where(fg, run, torch.full_like(run, dummy)).reshape(-1), dummy + 1


def _run_min(labels_flat, run, slots):
    """Lower every label to the minimum over its run."""
    # Every slot that is read back receives at least its own pixel, so no initial fill is needed.
    lowest = torch.empty(slots, dtype=torch.int64, device=labels_flat.device)
    lowest.scatter_reduce_(0, run, labels_flat, reduce="amin", include_self=False)
    return lowest[run]


def _diagonal_min(labels, fg, none):
    b, h, w = labels.shape
    padded = F.pad(labels, (1, 1, 1, 1), value=none)
    low = labels
    for dy, dx in ((0, 0), (0, 2), (2, 0), (2, 2)):
        low = torch.minimum(low, padded[:, dy:dy + h, dx:dx + w])
    return torch.where(fg, low, labels)


def label_components(fg, connectivity=8):
    """Connected components of bool ``fg [B,H,W]`` -> int64 labels ``[B,H,W]``.

    0 is background; every component gets one positive label, unique across the whole batch
    (labels are not contiguous: a component's label is 1 + the flat index of its first pixel).
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity is {connectivity}: use 4 or 8")
    b, h, w = fg.shape
    n = b * h * w
    # Labels are flat pixel indices of the same component, so they double as pointers (label
    # equivalence); "no label" is n, which points at the table's last slot, always n, and stays
    # exact through F.pad's float fill value.
    none = n
    start = torch.arange(n, device=fg.device, dtype=torch.int64)
    labels = torch.where(fg.reshape(-1), start, torch.full_like(start, none))
    row_run, row_slots = _run_ids(fg)
    col_run, col_slots = _run_ids(fg.transpose(1, 2).contiguous())
    # Column runs are found on the transposed mask but indexed in the original pixel order.
    col_run = col_run.view(b, w, h).transpose(1, 2).reshape(-1)
    for _ in range(n + 1):
        low = _run_min(_run_min(labels, row_run, row_slots), col_run, col_slots)
        if connectivity == 8:
            low = _diagonal_min(low.view(b, h, w), fg, none).reshape(-1)
        # Hand each pixel's lowered label to the pixel its current label points at, then follow
        # pointers: whole chains merge per sweep instead of one run at a time.
        table = torch.cat([low, low.new_full((1,), none)])
        table.scatter_reduce_(0, labels, low, reduce="amin", include_self=True)
        while True:
            jumped = table[table]
            if torch.equal(jumped, table):
                break
            table = jumped
        new = table[:-1]
        if torch.equal(new, labels):
            break
        labels = new
    labels = labels.view(b, h, w) + 1
    return torch.where(fg, labels, torch.zeros_like(labels))


def component_sizes(labels):
    """Per pixel, the pixel count of its component (0 on background) for ``label_components``' output."""
    counts = torch.bincount(labels.reshape(-1), minlength=labels.numel() + 1)
    counts[0] = 0
    return counts[labels]


def border_touching(labels):
    """Bool ``[B,H,W]``: pixels whose component touches the image border."""
    touching = torch.zeros(labels.numel() + 1, dtype=torch.bool, device=labels.device)
    edges = torch.cat([labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]], dim=1)
    touching[edges.reshape(-1)] = True
    touching[0] = False
    return touching[labels]


def disc_dilate(x, radius, outside=0.0):
    """Flat grey-level dilation of float ``x [B,H,W]`` by a disc of ``radius`` pixels
    (offsets with dx^2 + dy^2 <= r^2); outside the image counts as ``outside``."""
    r = int(radius)
    if r <= 0:
        return x
    b, h, w = x.shape
    padded = F.pad(x, (r, r, r, r), value=float(outside))
    # table[j][..., i] = max(padded[..., i : i + 2**j])
    table = [padded]
    while 2 ** len(table) <= 2 * r + 1:
        prev, step = table[-1], 2 ** (len(table) - 1)
        table.append(torch.maximum(prev[..., :-step], prev[..., step:]))
    out = None
    for dy in range(r + 1):
        half = isqrt(r * r - dy * dy)
        level = (2 * half + 1).bit_length() - 1
        span, rows = 2 ** level, table[level]
        left = r - half
        right = r + half - span + 1
        window = torch.maximum(rows[..., left:left + w], rows[..., right:right + w])
        for shift in {dy, -dy}:
            part = window[:, r + shift:r + shift + h]
            out = part.clone() if out is None else torch.maximum(out, part, out=out)
    return out


def disc_erode(x, radius):
    """Flat grey-level erosion by a disc; outside the image counts as 1, so a mask that touches
    the frame edge is not eaten from the edge. (Negation is exact in floating point, so this is
    the exact minimum over the disc, as a library's erode computes it.)"""
    if int(radius) <= 0:
        return x
    return -disc_dilate(-x, radius, outside=-1.0)
