"""One shot, run where a worker is: the library's :func:`memvos_core.shot.run`, then the
done-marker.

The same function runs in a local worker process and in a Ray task, so both paths produce
exactly what ``python -m memvos_core --frames ... --out ...`` produces.
"""
import argparse
import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .. import shot as single
from . import marker

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
REASON_CHARS = 300


@dataclass(frozen=True)
class Job:
    """What a worker gets: the shot's index, its options (:func:`memvos_core.shot.build_parser`'s
    namespace, checked by the batch), and (for the scheduler) its output folder and device."""
    index: int
    args: object
    out: str
    device: str = "auto"


class BatchInterrupted(Exception):
    """Ctrl-C or SIGTERM during a batch; ``records`` holds the shots that ended before it."""

    def __init__(self, records):
        super().__init__("batch interrupted")
        self.records = list(records)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a scheduler stopping the job) ends the batch like Ctrl-C: workers are stopped and
    the summary says what finished. Off the main thread it changes nothing."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@dataclass
class ShotRecord:
    index: int
    out: str
    status: str = FAILED
    frames: int | None = None
    seconds: float = 0.0
    reason: str = ""
    host: str = ""

    @property
    def fps(self):
        if self.status != DONE or not self.frames or self.seconds <= 0:
            return None
        return self.frames / self.seconds


def one_line(exc):
    """An exception as the one line a summary table can hold."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__  # Ray errors carry the remote traceback below
    if not isinstance(exc, single.user_errors()):
        text = f"{type(exc).__name__}: {text}"  # unexpected: the type helps whoever debugs it
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3] + "..."


class _Silent:
    def __call__(self, done, total):
        pass

    def close(self):
        pass


def _frames_written(result, out):
    indices = getattr(result, "frame_indices", None)
    if indices is not None:
        return len(indices)
    return sum(1 for _ in Path(out).glob("*.png"))


def run_shot(index, args, report=None, pin_device=None):
    """Run shot ``index`` (its options ``args``) unless its marker says it is done; never raises
    for a failing shot (the record says why), only for an interrupt. ``pin_device`` (``cuda:N``)
    replaces ``auto``/``cuda`` for a worker that owns one GPU."""
    import socket
    start = time.monotonic()
    record = ShotRecord(index, out=args.out, host=socket.gethostname())
    args = argparse.Namespace(**vars(args))  # the worker's own copy: device, progress and quiet change
    if marker.shot_state(args) == marker.DONE:
        record.status = SKIPPED
        record.frames = (marker.read_marker(args.out) or {}).get("frames")
        return record
    marker.remove_marker(args.out)
    if pin_device and args.device in ("auto", "cuda"):
        args.device = pin_device
    args.quiet = True
    args.progress = report or _Silent()
    try:
        result = single.run(args)
        record.frames = _frames_written(result, args.out)
        record.seconds = time.monotonic() - start
        marker.write_marker(args, record.frames, record.seconds)
        record.status = DONE
    except Exception as exc:  # one shot's failure must not stop the batch; the record says why
        record.reason = one_line(exc)
        record.seconds = time.monotonic() - start
    return record
