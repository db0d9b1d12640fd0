"""Where the Propagate node keeps its work: results and checkpoints in ComfyUI's temp folder, so
that a cancelled (or failed) run continues where it stopped when it is queued again.

A run is named by a digest of everything its masks depend on: the model and its precision, the
session's settings, keyframes and carried memory, the frames (a file's names, sizes and times;
a sample of an IMAGE batch's pixels) and the range and direction. Its folder
``<temp>/memvos-runs/<digest>`` holds the per-frame results and the last checkpoint of the core's
:class:`~memvos_core.session.Propagation` (the command line's ``--resume`` machinery): queued again
with the same inputs, the run loads the checkpoint and computes only the frames after it, the
same masks an uninterrupted run gives; any other input is another digest, so it starts afresh.
Once a run finishes, its folder belongs to its results and goes with them (or when ComfyUI
clears its temp folder, at start and exit). Results of runs that are not resumable (their folder
is held by the results of an earlier run still alive) go to ``<temp>/memvos-cache``.

A run also leaves a :class:`~memvos_core.session.span.RunRecord` (its results and each pass's
memory state at each keyframe) so that the next run, after the keyframes change, can propagate
only the frames the change affects (:func:`span_run`; its results go to ``<temp>/memvos-cache``
and it is short, so it keeps no checkpoint: a cancelled span run starts again).
"""
import hashlib
import json
import os
from pathlib import Path

import torch

from . import comfy_env
from .common import LOG
from .frame_source import FrameClip, files_fingerprint
from ..memvos_core.session import Checkpoint, CheckpointMismatch, Propagation, ResultStore, StoreError
from ..memvos_core.session.span import RunRecord, propagate_spans

RUNS_FOLDER = "memvos-runs"
CACHE_FOLDER = "memvos-cache"
CHECKPOINT_NAME = "checkpoint.safetensors"
CHECKPOINT_EVERY = 100      # frames between checkpoints (and at least every CHECKPOINT_SECONDS)
CHECKPOINT_SECONDS = 30.0
PIXEL_STRIDE = 8            # an IMAGE batch is fingerprinted on every 8th row and column


def cache_root():
    """Temporary results of the nodes: ComfyUI's temp folder, which ComfyUI clears at start and exit."""
    return Path(comfy_env.temp_directory()) / CACHE_FOLDER


def runs_root():
    return Path(comfy_env.temp_directory()) / RUNS_FOLDER


def _tensor(digest, t):
    t = t.detach().to("cpu").contiguous()
    digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _frames(digest, clip):
    if isinstance(clip, FrameClip):
        source = clip.source
        digest.update(json.dumps([source.path, source.kind, source.count, list(source.frame_hw), clip.offset,
                                  clip.count, files_fingerprint(source.path)]).encode())
        return
    digest.update(f"image{tuple(clip.shape)}".encode())
    for t in range(clip.shape[0]):  # a frame at a time: no copy of the batch
        _tensor(digest, clip[t, ::PIXEL_STRIDE, ::PIXEL_STRIDE])


def run_key(session, clip, first, direction, start, end, shot=None):
    """The digest naming a run (see the module docstring); ``shot``: :func:`frames_key` of
    ``clip`` when the caller has it already (the frames are read once)."""
    digest = hashlib.sha256()
    model = session.model
    digest.update(json.dumps({"model": model.describe(), "device": str(model.device), "precision": model.precision,
                              "config": session.config.to_dict(), "internal_size": session.internal_size,
                              "antialias": session.antialias, "tta": [list(session.tta_scales), session.tta_flip],
                              "range": [direction, first, start, end]}, sort_keys=True, default=str).encode())
    for k in session.keyframes:
        digest.update(f"keyframe{k.frame_index}{list(k.object_ids)}".encode())
        _tensor(digest, k.labels)
        _tensor(digest, k.image)
    for name, state in (("forward", session.forward_state), ("backward", session.backward_state)):
        if state is not None:  # a chunk of a long shot continues the memory of the one before
            digest.update(json.dumps({name: state.meta()}, sort_keys=True, default=str).encode())
            for key in sorted(state.tensors):
                _tensor(digest, state.tensors[key])
    digest.update((shot or frames_key(clip)).encode())
    return digest.hexdigest()[:32]


def frames_key(clip):
    """A digest of the frames alone (as :func:`run_key` reads them): the same shot again?"""
    digest = hashlib.sha256()
    _frames(digest, clip)
    return digest.hexdigest()[:32]


def span_run(record, session, clip, progress, cancel):
    """``(new_session, result, record)``: ``session`` propagated again over only the frames its
    keyframe change from ``record``'s run affects (:func:`~memvos_core.session.span.propagate_spans`)."""
    progress, cancel = cancel_between_frames(progress, cancel)
    return propagate_spans(record, session, clip, progress, cancel, store=ResultStore.temporary(cache_root()))


def cancel_between_frames(progress, cancel):
    """``(progress, cancel)`` where a cancel noticed by the progress bar (ComfyUI's bar checks the
    button on every update) is raised at the next frame boundary instead, by ``cancel``: only
    there is the memory state whole, so only there can the run checkpoint before it stops."""
    noticed = []

    def quiet_progress(done, total):
        if not noticed:
            try:
                progress(done, total)
            except Exception as exc:  # ComfyUI's InterruptProcessingException
                noticed.append(exc)

    def checked_cancel():
        if noticed:
            raise noticed[0]
        return cancel()
    return quiet_progress, checked_cancel


class ResumableRun:
    """One Propagate run over clip frames ``[start, end)`` in its own folder: :meth:`run` resumes
    from the folder's checkpoint when there is one. ``resumed_at``: frames of work the run did
    not do again (0 for a fresh start). ``shot``: :func:`frames_key` of ``clip``, if known."""

    def __init__(self, session, clip, first, direction, start, end, shot=None):
        self.args = (session, clip, first, direction, start, end)
        self.folder = runs_root() / run_key(session, clip, first, direction, start, end, shot)
        self.resumed_at = 0
        self.record = None  # the finished run's RunRecord

    def _store(self):
        """The run's own store, or None while the results of an earlier identical run hold it."""
        try:
            return ResultStore.open(self.folder)
        except StoreError:
            return None

    def run(self, progress, cancel):
        progress, cancel = cancel_between_frames(progress, cancel)
        store = self._store()
        if store is None:
            job = Propagation(*self.args, store=ResultStore.temporary(cache_root()), keep_states=True)
            new_session, result = job.run(progress, cancel)
            self.record = RunRecord.of(job, new_session)
            return new_session, result
        checkpoint = Checkpoint(self.folder / CHECKPOINT_NAME, every=CHECKPOINT_EVERY, every_s=CHECKPOINT_SECONDS)
        job = Propagation(*self.args, store=store, keep_states=True)
        try:
            try:
                new_session, result = job.run(progress, cancel, None, checkpoint, resume=checkpoint.exists())
            except CheckpointMismatch as exc:  # a damaged or foreign file under our name: start afresh
                LOG.warning("MemVOS: %s; propagating from the start", exc)
                os.remove(checkpoint.path)
                job = Propagation(*self.args, store=store, keep_states=True)
                new_session, result = job.run(progress, cancel, None, checkpoint)
        except BaseException:
            store.close()  # the folder and its checkpoint stay for the next run
            raise
        self.resumed_at = job.resumed_at
        self.record = RunRecord.of(job, new_session)  # a resumed run's states start at its checkpoint
        if checkpoint.exists():
            os.remove(checkpoint.path)
        store.hand_over()
        return new_session, result


__all__ = ["ResumableRun", "cancel_between_frames", "cache_root", "frames_key", "run_key", "runs_root", "span_run"]
