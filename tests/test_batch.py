"""The batch command on this machine's worker processes: same outputs as single-shot runs,
skip on rerun, a failing shot alone, an interrupted batch finished by a rerun."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batch_shots import assert_same_outputs, fresh_copy, output_files, record_progress, reference_shots
from memvos_core.batch import marker
from memvos_core.command.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread_per_worker(monkeypatch):
    """Workers and references compute with one thread each: float sums depend on the count."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def shots_root(tmp_path_factory):
    """Three tiny shots and their single-shot CLI outputs (the reference) in ``ref/shotK``."""
    return reference_shots(tmp_path_factory)


def copy_shots(shots_root, tmp_path):
    return fresh_copy(shots_root, tmp_path), shots_root[1]


def batch(*args):
    return main(["batch", *map(str, args), "--quiet"])


def test_batch_equals_single_shots_and_rerun_skips(shots_root, tmp_path, capsys, monkeypatch):
    shots_json, shots = copy_shots(shots_root, tmp_path)
    progress = record_progress(monkeypatch)
    assert batch(shots_json, "--workers", 2) == 0
    table = capsys.readouterr().out
    assert "3 done, 0 skipped, 0 failed" in table
    # shot 2 is 'both' with its only keyframe on frame 0: one forward pass, as 'forward' would be
    assert {(shot, total) for shot, done, total in progress if done == total} == {(0, 8), (1, 8), (2, 8)}
    for k in range(3):
        assert_same_outputs(tmp_path / "out" / f"shot{k}", shots_root[0] / "ref" / f"shot{k}")
        done = json.loads((tmp_path / "out" / f"shot{k}" / "memvos-done.json").read_text())
        assert done["frames"] == 8 and len(done["weights"]["sha256"]) == 64
    assert (tmp_path / "out" / "shot1" / "soft" / "1").is_dir()  # the shot's own "soft": true

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.png")}
    assert batch(shots_json) == 0
    table = capsys.readouterr().out
    assert "0 done, 3 skipped, 0 failed" in table
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.png")} == stamps


def test_marker_tracks_settings_inputs_and_outputs(shots_root, tmp_path):
    from memvos_core.batch.spec import load_shots
    shots_json, shots = copy_shots(shots_root, tmp_path)
    shutil.copytree(shots_root[0] / "ref" / "shot0", tmp_path / "out" / "shot0")
    shot = load_shots(shots_json)[0]
    assert marker.shot_state(shot.args) == marker.INTERRUPTED  # outputs, no marker
    marker.write_marker(shot.args, 8, 1.0)
    assert marker.shot_state(shot.args) == marker.DONE

    moved = vars(shot.args) | {"device": "cuda", "models_dir": "/elsewhere", "quiet": True}
    assert marker.shot_state(type(shot.args)(**moved)) == marker.DONE  # where/how it runs: not the job
    for change in ({"size": 32}, {"set": ["mem_every=3"]}, {"direction": "backward"}):
        assert marker.shot_state(type(shot.args)(**(vars(shot.args) | change))) == marker.CHANGED, change

    mask = next((tmp_path / "shot0" / "masks").glob("*.png"))
    original = mask.read_bytes()
    labels = np.array(Image.open(mask))
    labels[:4, :4] = 1  # the artist fixes the keyframe
    fixed = Image.fromarray(labels, mode="P")
    fixed.putpalette(Image.open(mask).getpalette())
    fixed.save(mask)
    assert marker.shot_state(shot.args) == marker.CHANGED
    mask.write_bytes(original)
    assert marker.shot_state(shot.args) == marker.DONE
    (tmp_path / "out" / "shot0" / "00003.png").unlink()  # an output lost since
    assert marker.shot_state(shot.args) == marker.CHANGED


def test_a_broken_shot_fails_alone_with_its_reason(shots_root, tmp_path, capsys):
    shots_json, shots = copy_shots(shots_root, tmp_path)
    mask = next((tmp_path / "shot1" / "masks").glob("*.png"))
    empty = Image.new("P", Image.open(mask).size, 0)
    empty.save(mask)
    assert batch(shots_json, "--workers", 2) == 1
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if line.startswith("1 "))
    assert "failed" in row and "is empty" in row and "Traceback" not in captured.out
    assert "2 done, 0 skipped, 1 failed" in captured.out
    assert not (tmp_path / "out" / "shot1" / "memvos-done.json").exists()
    for k in (0, 2):
        assert_same_outputs(tmp_path / "out" / f"shot{k}", shots_root[0] / "ref" / f"shot{k}")


def test_interrupted_batch_is_finished_by_a_rerun(shots_root, tmp_path, capsys):
    shots_json, shots = copy_shots(shots_root, tmp_path)
    first_marker = tmp_path / "out" / "shot0" / "memvos-done.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # OMP_NUM_THREADS=1 from the fixture
    proc = subprocess.Popen([sys.executable, "-m", "memvos_core", "batch", str(shots_json), "--workers", "1",
                             "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not first_marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # a scheduler stopping the job while shot 1 runs
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    markers = [(tmp_path / "out" / f"shot{k}" / "memvos-done.json").exists() for k in range(3)]
    assert markers[0] and not all(markers), markers
    before = output_files(tmp_path / "out")
    time.sleep(1.0)
    assert output_files(tmp_path / "out") == before  # no worker left running after the batch

    assert batch(shots_json) == 0
    table = capsys.readouterr().out
    assert "skipped" in next(line for line in table.splitlines() if line.startswith("0 "))
    for k in range(3):
        assert_same_outputs(tmp_path / "out" / f"shot{k}", shots_root[0] / "ref" / f"shot{k}")
    assert not list((tmp_path / "out").rglob("*.part"))
