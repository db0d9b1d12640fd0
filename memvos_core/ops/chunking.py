"""THE chunker: frames in chunks bounded by a memory budget, computed on one device, results
handed to another, with progress, cancel and an out-of-memory retreat.

A chunk is as many frames as fit ``budget_bytes`` given an op's honest working set per frame
(source size x planes x bytes per pixel of its kernel on that device), so a 4K clip gets fewer
frames per chunk than a 480p one; never fewer than one frame. Every op in ``memvos_core.ops``
chunks through :func:`run_chunked` (or :func:`frame_chunks` for a fixed count).

``Compute`` says where: ``device`` (where the work runs; ``None``: where the input is),
``output_device`` (where results are handed back; ``None``: where the input is),
``budget_bytes`` (``None``: :func:`default_budget` of the device), ``progress(done, total)``
called after every chunk with frames done, and ``cancel()`` checked before every chunk (it may
raise, as ComfyUI's interrupt does, or return True to raise :class:`OpCancelled`).
"""
import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch

LOG = logging.getLogger("memvos")

MiB = 1 << 20
GiB = 1 << 30
# A GPU op past ~1 GiB of temporaries gains nothing from bigger batches but takes room from models.
MAX_DEVICE_BUDGET = 2 * GiB
MIN_BUDGET = 64 * MiB
CPU_BUDGET = 1 * GiB
FREE_SHARE = 0.5  # of the device's free memory, for one op's temporaries


class OpCancelled(Exception):
    """Raised when ``Compute.cancel()`` returned True; nothing of the op's result is kept."""


@dataclass(frozen=True)
class Compute:
    device: Optional[torch.device] = None
    output_device: Optional[torch.device] = None
    budget_bytes: Optional[int] = None
    progress: Optional[Callable[[int, int], None]] = None
    cancel: Optional[Callable[[], bool]] = None

    def on(self, source_device):
        """The compute and output devices for an input on ``source_device``."""
        source = torch.device(source_device)
        device = torch.device(self.device) if self.device is not None else source
        out = torch.device(self.output_device) if self.output_device is not None else source
        return device, out

    def budget(self, device):
        return int(self.budget_bytes) if self.budget_bytes is not None else default_budget(device)


def default_budget(device, free_bytes=None):
    """Bytes one op may use for its temporaries on ``device``: half the free memory on an
    accelerator (``free_bytes`` as the caller measured it, e.g. ComfyUI's accounting; else
    CUDA's own), between 64 MiB and 2 GiB; a fixed 1 GiB on the CPU."""
    device = torch.device(device)
    if device.type == "cpu":
        return CPU_BUDGET if free_bytes is None else int(min(CPU_BUDGET, max(MIN_BUDGET, FREE_SHARE * free_bytes)))
    if free_bytes is None:
        if device.type == "cuda" and torch.cuda.is_available():
            free_bytes = torch.cuda.mem_get_info(device)[0]
        else:
            return CPU_BUDGET  # MPS, XPU...: no portable query; a modest fixed share
    return int(min(MAX_DEVICE_BUDGET, max(MIN_BUDGET, FREE_SHARE * free_bytes)))


def frame_chunks(num_frames, chunk_size):
    """``(start, stop)`` pairs covering ``range(num_frames)`` in chunks of ``chunk_size`` frames."""
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size is {chunk_size}: give at least 1 frame per chunk")
    return [(t, min(t + chunk_size, num_frames)) for t in range(0, num_frames, chunk_size)]


def frames_per_chunk(bytes_per_frame, budget_bytes, halo=0):
    """How many frames fit the budget when each chunk also holds ``halo`` extra frames on each
    side (a temporal window); at least 1."""
    bytes_per_frame = max(1, int(bytes_per_frame))
    return max(1, int(budget_bytes) // bytes_per_frame - 2 * int(halo))


def _is_oom(exc):
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _to(result, device):
    if torch.is_tensor(result):
        return result.to(device)
    if isinstance(result, (tuple, list)):
        return type(result)(_to(r, device) for r in result)
    if isinstance(result, dict):
        return {k: _to(v, device) for k, v in result.items()}
    return result


_FELL_BACK = set()


def run_chunked(num_frames, work, *, bytes_per_frame, compute=None, source_device="cpu", chunk_size=None,
                halo=0):
    """Run ``work(t0, t1, device)`` over ``range(num_frames)`` in budget-sized chunks.

    ``work`` reads frames t0..t1 of its inputs, moves them to ``device`` and returns a tensor (or
    a tuple, list or dict of tensors; anything else is passed as is); each result is moved to the output
    device as soon as its chunk is done, so the compute device never holds more than one chunk.
    ``chunk_size`` (frames) overrides the budget. Out of memory on an accelerator: the chunk is
    halved and retried; a single frame that still does not fit runs on the CPU (logged once).
    Returns the list of per-chunk results in frame order."""
    compute = compute or Compute()
    device, out_device = compute.on(source_device)
    if chunk_size is None:
        step = frames_per_chunk(bytes_per_frame, compute.budget(device), halo)
    else:
        step = max(1, int(chunk_size))
    results, t0 = [], 0
    while t0 < num_frames:
        if compute.cancel is not None and compute.cancel():
            raise OpCancelled("cancelled")
        t1 = min(t0 + step, num_frames)
        try:
            result = work(t0, t1, device)
        except RuntimeError as exc:
            if device.type == "cpu" or not _is_oom(exc):
                raise
            if t1 - t0 > 1:
                step = max(1, (t1 - t0) // 2)
            else:
                if device.type not in _FELL_BACK:
                    _FELL_BACK.add(device.type)
                    LOG.warning("MemVOS: one frame did not fit in %s memory; those frames run on the CPU", device)
                result = work(t0, t1, torch.device("cpu"))
                results.append(_to(result, out_device))
                t0 = t1
                if compute.progress is not None:
                    compute.progress(t0, num_frames)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        results.append(_to(result, out_device))
        t0 = t1
        if compute.progress is not None:
            compute.progress(t0, num_frames)
    return results


def concat_as_made(pieces, count, dtype=None):
    """``torch.cat`` of ``pieces`` along frames, ``count`` frames in all: ``pieces`` is an iterable of
    tensors ``[k, ...]`` (or of equal-length tuples of them) made one after another, each copied
    into one tensor (per tuple member) allocated at the first piece, converted to ``dtype`` as it
    is copied. It holds the result and the piece in hand, where a list then ``torch.cat`` (or
    ``torch.stack``, then ``.float()``) holds every piece beside the result and a converted copy
    besides: two to three times the chunk a working budget counts once. The values are those of
    ``torch.cat(...).to(dtype)``."""
    out, row, as_tuple = None, 0, False
    for piece in pieces:
        as_tuple = isinstance(piece, tuple)
        parts = piece if as_tuple else (piece,)
        if out is None:
            out = tuple(torch.empty((count, *p.shape[1:]), dtype=dtype or p.dtype, device=p.device) for p in parts)
        rows = parts[0].shape[0]
        if row + rows > count:
            row += rows
            break
        for target, part in zip(out, parts):
            target[row:row + rows].copy_(part)
        row += rows
        del piece, parts  # freed before the next piece is made
    if out is None or row != count:
        raise ValueError(f"internal: {row} frames or more were made where {count} were expected")
    return out if as_tuple else out[0]


# ------------------------------------------------------------------ frame sources

def num_frames_of(source):
    """Frames in a tensor ``[T,...]`` or in a lazy source with ``num_frames``."""
    return source.shape[0] if torch.is_tensor(source) else int(source.num_frames)


def read_chunk(source, t0, t1):
    """Frames t0..t1 of a tensor ``[T,...]`` or of a lazy source with ``chunk(t0, t1)`` (frames
    decoded or masks materialised on demand), as a tensor; the one accessor the ops read through."""
    return source[t0:t1] if torch.is_tensor(source) else source.chunk(t0, t1)
