"""The batch's progress display, the worker-side rate limit, and the summary table."""
import io

from memvos_core.batch.progress import BatchProgress, Throttled, summary_table
from memvos_core.batch.shot import DONE, FAILED, SKIPPED, ShotRecord


def test_throttled_reports_at_a_bounded_rate_and_always_the_last_frame():
    sent, checks = [], []
    report = Throttled(7, lambda *a: sent.append(a), check=lambda: checks.append(1), every=3600)
    for done in range(1, 1001):
        report(done, 1000)
    assert sent == [(7, 1, 1000), (7, 1000, 1000)] and len(checks) == 2


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_one_status_line_for_the_batch():
    stream = Tty()
    progress = BatchProgress(4, stream=stream)
    progress.finished(ShotRecord(0, "o0", SKIPPED, 10))
    progress.started(1)
    progress.frames(1, 5, 10)
    progress.started(2)
    progress.frames(2, 3, 20)
    assert progress.frames_done == 8
    progress.finished(ShotRecord(1, "o1", DONE, 10, 2.0))
    progress.finished(ShotRecord(2, "o2", FAILED, None, 1.0, "mask k.png is empty: draw the object"))
    line = progress.status_line()
    assert line.startswith("shots 3/4 (1 skipped, 1 failed, 0 running) | frames 10 |")
    text = stream.getvalue()
    assert "shot 2 failed: mask k.png is empty" in text and "shot 1 done: 10 frames" in text
    assert "\r\033[K" in text  # redrawn in place on a terminal


def test_quiet_and_log_modes():
    quiet = io.StringIO()
    progress = BatchProgress(1, quiet=True, stream=quiet)
    progress.frames(0, 1, 2)
    progress.finished(ShotRecord(0, "o", FAILED, reason="x"))
    assert quiet.getvalue() == ""
    log = io.StringIO()  # not a terminal: whole lines, no control characters
    progress = BatchProgress(1, stream=log, log_every=3600)
    for done in range(1, 50):
        progress.frames(0, done, 50)
    assert log.getvalue().count("\n") == 1 and "\r" not in log.getvalue()


def test_summary_table_lists_every_shot():
    records = [ShotRecord(0, "/out/a", DONE, 100, 20.0), ShotRecord(1, "/out/b", SKIPPED, 50),
               ShotRecord(3, "/out/d", FAILED, None, 0.5, "mask 00000.png matches no frame")]
    table = summary_table(records, 25.0, total_shots=4).splitlines()
    assert table[0].split() == ["shot", "status", "frames", "seconds", "frames/s", "output", "/", "reason"]
    assert table[1].split() == ["0", "done", "100", "20.0", "5.00", "/out/a"]
    assert table[2].split() == ["1", "skipped", "50", "-", "-", "/out/b"]
    assert table[3].split()[:2] == ["2", "not"]
    assert table[4].endswith("mask 00000.png matches no frame")
    assert table[5] == "1 done, 1 skipped, 1 failed, 1 not run; 100 frames in 25.0 s (4.00 frames/s)"
