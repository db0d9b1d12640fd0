"""Per-frame results to the host without stopping the device every frame.

Copying a CUDA tensor into ordinary host memory waits until the GPU has finished everything
queued before it: once per frame the CPU stops queuing the next frame's work, and the GPU idles
while Python catches up. :class:`HostCopies` copies into pinned staging memory with
``non_blocking=True`` and records an event instead; a copy is handed over once its event has
passed, so the CPU keeps up to ``depth`` frames of work queued ahead of the copies.
"""
from collections import deque

import torch


class HostCopies:
    """Copies to the host, handed back in the order they were started.

        copies = HostCopies()
        for i in frames:
            ...
            for j, host in copies.put(i, prob):   # the copies finished by now
                store(j, host)
        for j, host in copies.flush():            # the rest, waiting for the device
            store(j, host)

    ``asynchronous``: ``None`` copies CUDA tensors asynchronously and everything else at once
    (a CPU tensor is handed back as is); ``True``/``False`` force one way. ``make_event(device)``
    makes the event that marks a copy's end (tests pass a stand-in: the CPU has no events).
    A ``None`` result passes through in order, for frames that have nothing to copy.
    """

    def __init__(self, depth=4, asynchronous=None, make_event=None):
        if int(depth) < 1:
            raise ValueError(f"HostCopies depth={depth} must be at least 1")
        self.depth = int(depth)
        self.asynchronous = asynchronous
        self.make_event = make_event or (lambda device: torch.Event(device=device))
        self._pending = deque()   # (key, host tensor or None, event or None)

    def __len__(self):
        return len(self._pending)

    def _is_async(self, tensor):
        return tensor.is_cuda if self.asynchronous is None else bool(self.asynchronous)

    def put(self, key, tensor):
        """Start copying ``tensor`` to the host under ``key``; returns the copies finished so far
        (at least the oldest ones beyond ``depth``) as ``(key, host tensor)`` pairs."""
        if tensor is None or not self._is_async(tensor):
            self._pending.append((key, None if tensor is None else tensor.to("cpu"), None))
        else:
            staging = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=tensor.is_cuda)
            staging.copy_(tensor, non_blocking=True)
            event = self.make_event(tensor.device)
            event.record()
            self._pending.append((key, staging, event))
        return self.done()

    def done(self, wait=False):
        """The copies that have finished, oldest first, stopping at the first unfinished one.
        Copies beyond ``depth`` are waited for; with ``wait`` all of them are."""
        out = []
        while self._pending:
            key, host, event = self._pending[0]
            if event is not None:
                if not (wait or len(self._pending) > self.depth or event.query()):
                    break
                event.synchronize()
                # The staging memory goes back to torch's pinned-memory cache; the result is kept
                # in ordinary memory so that thousands of stored frames never pin the host's RAM.
                host = host.clone()
            self._pending.popleft()
            out.append((key, host))
        return out

    def flush(self):
        """Every copy still pending, waiting for the device as needed."""
        return self.done(wait=True)
