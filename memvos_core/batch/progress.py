"""Progress of a whole batch in one display, and the summary table at the end.

Workers report ``(shot, done, total)`` at most twice a second per shot (``Throttled``), so the
channel to the parent stays small however many frames a shot has; the parent adds them up.
"""
import sys
import time

from .shot import DONE, FAILED, SKIPPED

REPORT_EVERY_S = 0.5


class Throttled:
    """Worker side: the CLI's ``progress(done, total)`` callable, forwarding to ``send(index, done,
    total)`` at a bounded rate (always the last frame). ``check()`` runs with each send and may
    raise to stop the shot (a local worker whose batch is gone)."""

    def __init__(self, index, send, check=None, every=REPORT_EVERY_S):
        self.index, self.send, self.check, self.every = index, send, check, every
        self.last = float("-inf")

    def __call__(self, done, total):
        now = time.monotonic()
        if done < total and now - self.last < self.every:
            return
        self.last = now
        if self.check is not None:
            self.check()
        self.send(self.index, done, total)

    def close(self):
        pass


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class BatchProgress:
    """Parent side: one status line for the batch (shots done, frames done, rate), redrawn in
    place on a terminal and printed every ``log_every`` seconds into a log; a line per shot as
    it ends. Silent when ``quiet``."""

    def __init__(self, total_shots, quiet=False, stream=None, log_every=30.0):
        self.total = total_shots
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = REPORT_EVERY_S if self.tty else log_every
        self.start = time.monotonic()
        self.last_draw = float("-inf")
        self.counts = {DONE: 0, SKIPPED: 0, FAILED: 0}
        self.running = {}      # shot -> frames done so far
        self.finished_frames = 0

    @property
    def frames_done(self):
        return self.finished_frames + sum(self.running.values())

    def status_line(self):
        ended = sum(self.counts.values())
        elapsed = time.monotonic() - self.start
        rate = self.frames_done / elapsed if elapsed > 0 else 0.0
        extra = [f"{self.counts[s]} {s}" for s in (SKIPPED, FAILED) if self.counts[s]]
        extra.append(f"{len(self.running)} running")
        return (f"shots {ended}/{self.total} ({', '.join(extra)}) | frames {self.frames_done} | "
                f"{rate:.2f} frames/s | {_clock(elapsed)}")

    def _draw(self, force=False):
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < self.every:
            return
        self.last_draw = now
        if self.tty:
            self.stream.write("\r\033[K" + self.status_line())
        else:
            self.stream.write(self.status_line() + "\n")
        self.stream.flush()

    def _say(self, text):
        if self.quiet:
            return
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self._draw(force=self.tty)

    def started(self, index):
        self.running.setdefault(index, 0)
        self._draw()

    def frames(self, index, done, total):
        self.running[index] = done
        self._draw()

    def finished(self, record):
        done = self.running.pop(record.index, 0)
        self.counts[record.status] = self.counts.get(record.status, 0) + 1
        if record.status == DONE:
            self.finished_frames += max(done, record.frames or 0)
        if record.status == FAILED:
            self._say(f"shot {record.index} failed: {record.reason}")
        elif record.status == DONE:
            self._say(f"shot {record.index} done: {record.frames} frames in {record.seconds:.1f} s ({record.out})")
        else:
            self._draw()

    def close(self):
        if not self.quiet and self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def summary_table(records, wall_seconds, total_shots=None):
    """Every shot on one row (done / skipped / failed with its reason / not run), then totals."""
    rows = [("shot", "status", "frames", "seconds", "frames/s", "output / reason")]
    by_index = {r.index: r for r in records}
    for index in range(total_shots if total_shots is not None else len(records)):
        r = by_index.get(index)
        if r is None:
            rows.append((str(index), "not run", "-", "-", "-", "interrupted before it started"))
            continue
        fps = r.fps
        rows.append((str(r.index), r.status, "-" if r.frames is None else str(r.frames),
                     f"{r.seconds:.1f}" if r.status != SKIPPED else "-",
                     "-" if fps is None else f"{fps:.2f}",
                     r.reason if r.status == FAILED else r.out))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows]
    counts = {s: sum(1 for r in records if r.status == s) for s in (DONE, SKIPPED, FAILED)}
    frames = sum(r.frames or 0 for r in records if r.status == DONE)
    rate = f" ({frames / wall_seconds:.2f} frames/s)" if wall_seconds > 0 and frames else ""
    lines.append(f"{counts[DONE]} done, {counts[SKIPPED]} skipped, {counts[FAILED]} failed"
                 + (f", {total_shots - len(records)} not run" if total_shots and total_shots > len(records) else "")
                 + f"; {frames} frames in {wall_seconds:.1f} s{rate}")
    return "\n".join(lines)
