"""A run's own folder, so that a cancelled (or crashed) run continues where it stopped when it is
asked for again with the same inputs (the Propagate node's resume; :meth:`memvos_core.shot.Shot.propagate_again`).

A run is named by a digest of everything its masks depend on (:func:`run_digest`): the model
and its precision, the session's settings, keyframes and carried memory, the frames (the
caller's digest of them, e.g. :func:`frames_digest`) and the range and direction; a span run's
name also holds the name of the run it corrects. Its folder ``<root>/<digest>`` holds the
per-frame results (:class:`~.store.ResultStore`), the memory states at keyframes
(:mod:`.keyframe_states`) and the last checkpoint (:class:`~.propagation.Checkpoint`; a span run
also notes its finished spans). Called again with the same inputs, the run loads the checkpoint
and computes only the frames after it, the same masks an uninterrupted run gives; any other
input is another digest, so it starts afresh. Once a run finishes, its folder belongs to its
results and goes with them (or at exit). A run whose folder is held (by the results of an
earlier identical run still alive) goes to a temporary store under ``cache`` instead and
keeps no checkpoint.
"""
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .propagation import Checkpoint
from .span import spans_done_path
from .store import ResultStore, StoreError

CHECKPOINT_NAME = "checkpoint.safetensors"
PIXEL_STRIDE = 8            # a batch of frames is fingerprinted on every 8th row and column


def tensor_digest(digest, t):
    """Feed ``t`` (dtype, shape and bytes) to ``digest`` (a hashlib object)."""
    t = t.detach().to("cpu").contiguous()
    digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def frames_digest(frames):
    """A digest of a batch of frames ``[T,H,W,C]`` (a tensor, or a sequence of ``[H,W,C]``) read on
    every ``PIXEL_STRIDE``-th row and column, a frame at a time (no copy of the batch)."""
    digest = hashlib.sha256()
    shape = tuple(frames.shape) if hasattr(frames, "shape") else (len(frames),)
    digest.update(f"image{shape}".encode())
    for t in range(len(frames)):
        tensor_digest(digest, torch.as_tensor(frames[t])[::PIXEL_STRIDE, ::PIXEL_STRIDE])
    return digest.hexdigest()[:32]


def run_digest(session, first, direction, start, end, frames_key, after=None):
    """The digest naming a run over clip frames ``[start, end)`` (module docstring); ``frames_key``:
    the frames' digest; ``after``: the digest of the run a span run corrects."""
    digest = hashlib.sha256()
    model = session.model
    digest.update(json.dumps({"model": model.describe(), "device": str(model.device), "precision": model.precision,
                              "config": session.config.to_dict(), "internal_size": session.internal_size,
                              "antialias": session.antialias, "tta": [list(session.tta_scales), session.tta_flip],
                              "range": [direction, first, start, end]}, sort_keys=True, default=str).encode())
    for k in session.keyframes:
        digest.update(f"keyframe{k.frame_index}{list(k.object_ids)}".encode())
        tensor_digest(digest, k.labels)
        tensor_digest(digest, k.image)
    for name, state in (("forward", session.forward_state), ("backward", session.backward_state)):
        if state is not None:  # a chunk of a long shot continues the memory of the one before
            digest.update(json.dumps({name: state.meta()}, sort_keys=True, default=str).encode())
            for key in sorted(state.tensors):
                tensor_digest(digest, state.tensors[key])
    digest.update(frames_key.encode())
    if after is not None:
        digest.update(f"span after {after}".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class RunFolders:
    """Where runs keep their folders: ``root/<digest>``; ``cache``: the root of temporary stores
    (default :func:`~.store.default_cache_root`); a checkpoint every ``every`` frames or
    ``every_s`` seconds, whichever comes first."""

    root: Path
    cache: Path = None
    every: int = 100
    every_s: float = 30.0

    def temporary(self):
        return ResultStore.temporary(self.cache)

    def run(self, key, work):
        """``work(store, checkpoint)`` (returning ``(new_session, result, record)``) in run ``key``'s
        folder, resumable; or, when the folder is held or ``key`` is None, in a temporary store
        without a checkpoint. A finished run's folder goes with its results; a cancelled or failed
        one stays, checkpoint and all, for the next call."""
        store = None
        if key is not None:
            try:
                store = ResultStore.open(Path(self.root) / key)
            except StoreError:  # held by the results of an earlier identical run
                store = None
        if store is None:
            return work(self.temporary(), None)
        checkpoint = Checkpoint(store.folder / CHECKPOINT_NAME, every=self.every, every_s=self.every_s)
        try:
            out = work(store, checkpoint)
        except BaseException:
            store.close()  # the folder and its checkpoint stay for the next call
            raise
        for path in (checkpoint.path, spans_done_path(checkpoint)):
            if os.path.isfile(path):
                os.remove(path)
        store.hand_over()
        return out


__all__ = ["CHECKPOINT_NAME", "RunFolders", "frames_digest", "run_digest", "tensor_digest"]
