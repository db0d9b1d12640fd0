"""A shot from disk to disk: each frame's mask written as soon as it is final, checkpoints of the
memory state so that an interrupted run resumes (the command line's run loop).

Files. ``<out>/<stem>.png`` (and with ``soft``, ``<out>/soft/<id>/<stem>.png``) are written
atomically (a hidden ``.part`` file, then a rename) in the order frames become final: with
``both``, frames before the first keyframe while the backward pass runs, then every other frame
in order during the forward pass. The run's working files live in a cache folder (default
``<out>/.memvos-cache``): the last checkpoint and the backward results waiting for the forward
pass (about 10x smaller than raw uint16, only for frames between the first and last keyframe).
It is removed when the run finishes.

Compositing formats. ``exr`` (a compression name) also writes ``<out>/exr/<out name>.<frame
index>.exr`` as each frame becomes final (ComfyUI's Save Masks writes the same files; see
``exr_writer``). ``prores`` writes ``<out>/<out name>.mov`` (ProRes 4444, the matte as alpha):
a video is written in frame order, so it is encoded when the propagation has finished, from
the EXR frames when they are written (their colour is not estimated twice), else from the
combined mattes waiting in the cache folder as 16-bit PNGs (a resumed run finds them there).
``foreground`` picks the colour both carry (``compositing.FOREGROUNDS``).

Interrupting. Ctrl-C (or the caller's ``cancel``) stops at the next frame boundary and saves a
checkpoint there; every finished frame is already on disk. A second Ctrl-C stops at once (the
last periodic checkpoint still holds). ``resume=True`` continues from the checkpoint and writes
the same masks an uninterrupted run writes.
"""
import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..media_io.compositing import foreground_colour, rgba16
from ..media_io import media
from ..session import Checkpoint, Propagation, PropagationCancelled, ResultStore
from ..session.result import probabilities_to_labels

CACHE_NAME = ".memvos-cache"
CHECKPOINT_NAME = "checkpoint.safetensors"
PRORES_MATTES = "prores-mattes"


def prores_path(out):
    return Path(out) / f"{Path(out).resolve().name}.mov"


def default_cache_dir(out):
    return Path(out) / CACHE_NAME


class MaskWriter:
    """``on_final`` for a propagation: the frame's label PNG (and soft PNGs, EXR, the matte
    waiting for the ProRes video) under ``out``. ``frames`` (the shot) give the foreground."""

    def __init__(self, out, stems, soft=False, exr=None, prores_cache=None, frames=None, foreground="none",
                 device=None):
        self.out, self.stems, self.soft = Path(out), stems, soft
        self.frames, self.foreground, self.device = frames, foreground, device
        self.exr = None
        if exr is not None:
            from ..media_io.exr_writer import ExrSequence
            self.exr = ExrSequence(self.out / "exr", self.out.name, exr)
        self.prores_cache = Path(prores_cache) if prores_cache and exr is None else None
        if self.prores_cache is not None:
            self.prores_cache.mkdir(parents=True, exist_ok=True)
        self.written = 0

    def colour(self, index, alpha):
        if self.foreground == "none":
            return None
        return foreground_colour(self.frames[index].float().div(255), alpha, self.foreground, self.device)

    def __call__(self, index, result):
        prob = result.probabilities(index)
        stem = self.stems[index]
        media.save_label_png(probabilities_to_labels(prob, result.object_ids), self.out / f"{stem}.png")
        if self.soft:
            for j, o in enumerate(result.object_ids):
                folder = self.out / "soft" / str(o)
                folder.mkdir(parents=True, exist_ok=True)
                media.save_soft_png(prob[j + 1], folder / f"{stem}.png")
        alpha = prob[1:].amax(0) if prob.shape[0] > 1 else torch.zeros_like(prob[0])
        if self.exr is not None:
            colour = self.colour(index, alpha)
            self.exr.write(index, {f"obj{o}": prob[j + 1].numpy() for j, o in enumerate(result.object_ids)},
                           alpha.numpy(), None if colour is None else colour.numpy())
        if self.prores_cache is not None:
            media.save_soft_png(alpha, self.prores_cache / f"{index:06d}.png")
        self.written += 1

    def _prores_frame(self, index):
        if self.exr is not None:
            from ..media_io.exr_writer import read_exr
            planes = read_exr(self.exr.path(index))
            colour = None if "R" not in planes else torch.from_numpy(
                np.stack([planes["R"], planes["G"], planes["B"]], -1))
            return rgba16(colour, torch.from_numpy(planes["A"]))
        alpha = media.read_soft_png(self.prores_cache / f"{index:06d}.png")
        return rgba16(self.colour(index, alpha), alpha)

    def encode_prores(self, path, indices, fps, colour=None, progress=None, cancel=None):
        """The ProRes video of the finished frames ``indices`` in order, from the waiting mattes."""
        from ..media_io.video_writer import VideoWriter
        with VideoWriter(path, fps, "prores", colour=colour) as video:
            for n, index in enumerate(indices):
                if cancel is not None and cancel():
                    raise PropagationCancelled(f"cancelled while encoding {path}")
                video.write(self._prores_frame(index))
                if progress is not None:
                    progress(n + 1, len(indices))
        return path


@contextmanager
def cancel_on_interrupt(cancel=None):
    """A ``cancel()`` that is true once the caller's is, or after Ctrl-C: the first Ctrl-C asks
    the run to stop at the next frame boundary (where it can checkpoint), a second one raises
    KeyboardInterrupt at once. Ctrl-C is caught only in the main thread, only inside the block."""
    hit = [False]
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if installed else None

    def on_interrupt(signum, frame):
        hit[0] = True
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)

    if installed:
        signal.signal(signal.SIGINT, on_interrupt)

    def should_cancel():
        return hit[0] or bool(cancel is not None and cancel())

    try:
        yield should_cancel
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)


def remove_partial_files(out):
    """Hidden ``.part`` files left by a run that was killed while writing."""
    for path in list(Path(out).glob(".*.part")) + list(Path(out).glob("soft/*/.*.part")) + \
            list(Path(out).glob("exr/.*.part")):
        try:
            path.unlink()
        except OSError:
            pass


def propagate_to_folder(session, frames, out, *, direction="both", start=None, end=None, soft=False,
                        cache_dir=None, resume=False, checkpoint_every=250, checkpoint_seconds=60.0,
                        progress=None, cancel=None, log=None, exr=None, prores=False, foreground="none",
                        colour=None, device=None):
    """Propagate ``session`` over ``frames`` (a whole shot with ``.stems``) writing masks to
    ``out`` as frames become final; returns ``(new_session, result)`` (the result keeps no frames).
    ``exr`` (a compression), ``prores``, ``foreground`` and ``colour`` (the video's colour tags):
    the compositing formats of the module's docstring; a clean foreground is estimated on
    ``device`` (default: the CPU). Raises :class:`PropagationCancelled`
    after saving a checkpoint when cancelled."""
    log = log or (lambda text: None)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise media.MediaError(f"the output folder {out} could not be created ({exc.strerror or exc}): "
                               "choose another --out") from None
    cache = Path(cache_dir) if cache_dir else default_cache_dir(out)
    store = ResultStore.open(cache)
    checkpoint = Checkpoint(cache / CHECKPOINT_NAME, every=checkpoint_every, every_s=checkpoint_seconds,
                            extra={"out": str(out.resolve()), "soft": bool(soft)})
    try:
        if checkpoint.exists() and not resume:
            log(f"starting over: the checkpoint of an interrupted run in {cache} is discarded "
                "(--resume continues it instead)")
            os.remove(checkpoint.path)
            store.clear("backward")
        elif resume and not checkpoint.exists():
            log(f"nothing to resume in {cache}: starting from the first frame")
        elif resume:
            log(f"resuming from the checkpoint in {cache}")
        remove_partial_files(out)
        job = Propagation(session, frames, 0, direction, start, end, store=store, retain=False)
        writer = MaskWriter(out, frames.stems, soft, exr, cache / PRORES_MATTES if prores else None, frames,
                            foreground, device)
        with cancel_on_interrupt(cancel) as should_cancel:
            new_session, result = job.run(progress, should_cancel, writer, checkpoint, resume=resume)
            if prores:
                log(f"encoding {prores_path(out)}")
                writer.encode_prores(prores_path(out), result.frame_indices, getattr(frames, "fps", None) or 24.0,
                                     colour, cancel=should_cancel)
    except PropagationCancelled:
        store.close()
        log(f"interrupted: every finished frame is in {out}; run the same command with --resume to "
            f"continue from the last checkpoint (kept in {cache})")
        raise
    except BaseException:
        store.close()
        raise
    if checkpoint.exists():
        os.remove(checkpoint.path)
    if prores:
        shutil.rmtree(cache / PRORES_MATTES, ignore_errors=True)
    store.remove()
    return new_session, result


__all__ = ["CACHE_NAME", "MaskWriter", "cancel_on_interrupt", "default_cache_dir", "propagate_to_folder"]
