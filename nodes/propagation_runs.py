"""Where the Propagate node keeps its runs: ComfyUI's temp folder, so that a cancelled (or failed)
run continues where it stopped when it is queued again.

The mechanics are the core's (:mod:`memvos_core.session.run_folder`: a run's folder named by a
digest of its inputs holds its results, its memory states at keyframes and its checkpoint; a
span run is resumable the same way). Here: the folders' places, ``<temp>/memvos-runs/<digest>``
for runs and ``<temp>/memvos-cache`` for temporary results (ComfyUI clears its temp folder at
start and exit), the digest of a VIDEO or Load Frames source (its files' names, sizes and
times), and ComfyUI's cancel button, which is honoured at the next frame boundary only.
"""
import hashlib
import json
from pathlib import Path

from . import comfy_env
from .frame_source import FrameClip, files_fingerprint
from ..memvos_core.session.run_folder import RunFolders, frames_digest

RUNS_FOLDER = "memvos-runs"
CACHE_FOLDER = "memvos-cache"
CHECKPOINT_EVERY = 100      # frames between checkpoints (and at least every CHECKPOINT_SECONDS)
CHECKPOINT_SECONDS = 30.0


def cache_root():
    """Temporary results of the nodes: ComfyUI's temp folder, which ComfyUI clears at start and exit."""
    return Path(comfy_env.temp_directory()) / CACHE_FOLDER


def runs_root():
    return Path(comfy_env.temp_directory()) / RUNS_FOLDER


def run_folders():
    """The :class:`RunFolders` of the Propagate node's runs."""
    return RunFolders(runs_root(), cache_root(), CHECKPOINT_EVERY, CHECKPOINT_SECONDS)


def frames_key(clip):
    """A digest of the frames alone: the same shot again? A file source by its files, an IMAGE
    batch by a sample of its pixels (:func:`~memvos_core.session.run_folder.frames_digest`)."""
    if not isinstance(clip, FrameClip):
        return frames_digest(clip)
    source = clip.source
    digest = hashlib.sha256()
    digest.update(json.dumps([source.path, source.kind, source.count, list(source.frame_hw), clip.offset,
                              clip.count, files_fingerprint(source.path)]).encode())
    return digest.hexdigest()[:32]


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


__all__ = ["cache_root", "cancel_between_frames", "frames_key", "run_folders", "runs_root"]
