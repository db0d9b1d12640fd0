"""The batch command on Ray: a local instance (2 CPUs, started once for this module) runs one
task per shot; same outputs as single-shot runs, skip on rerun, a failing shot alone, an
interrupted batch finished by a rerun."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray  # in requirements-test.txt; users need it only for --ray
from PIL import Image

from batch_shots import assert_same_outputs, fresh_copy, record_progress, reference_shots
from memvos_core.command.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    from memvos_core.batch.ray_runner import connect
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # what Ray gives a 1-CPU task; the references match it
    # Ray's sockets live under its temp folder and a Unix socket path is at most 107 bytes: the
    # suite's contained temp folder is too deep, the base temp is not
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", str(tmp_path_factory.getbasetemp()))
        _, started = connect("auto", num_cpus=2, include_dashboard=False)
        yield
        if started:
            ray.shutdown()
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before


@pytest.fixture(scope="module")
def shots_root(tmp_path_factory):
    return reference_shots(tmp_path_factory)


def test_ray_batch_equals_single_shots_and_rerun_skips(local_ray, shots_root, tmp_path, capsys, monkeypatch):
    shots_json = fresh_copy(shots_root, tmp_path)
    progress = record_progress(monkeypatch)
    assert main(["batch", str(shots_json), "--ray", "auto", "--quiet"]) == 0
    assert "3 done, 0 skipped, 0 failed" in capsys.readouterr().out
    # shot 2 is 'both' with its only keyframe on frame 0: one forward pass, as 'forward' would be
    assert {(shot, total) for shot, done, total in progress if done == total} == {(0, 8), (1, 8), (2, 8)}
    for k in range(3):
        assert_same_outputs(tmp_path / "out" / f"shot{k}", shots_root[0] / "ref" / f"shot{k}")
    assert main(["batch", str(shots_json), "--ray", "auto", "--quiet"]) == 0
    assert "0 done, 3 skipped, 0 failed" in capsys.readouterr().out


def test_ray_broken_shots_fail_alone(local_ray, shots_root, tmp_path, capsys):
    shots_json = fresh_copy(shots_root, tmp_path)
    mask = next((tmp_path / "shot2" / "masks").glob("*.png"))
    Image.open(mask).resize((50, 30)).save(mask)
    shots = json.loads(shots_json.read_text())
    shots[1]["device"] = "cuda"  # this 2-CPU instance has no GPU: refused, never left pending
    shots_json.write_text(json.dumps(shots))
    assert main(["batch", str(shots_json), "--ray", "auto", "--workers", "2", "--quiet"]) == 1
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:4]}
    assert "failed" in rows["2"] and "must match their frames" in rows["2"]
    assert "failed" in rows["1"] and "the Ray cluster has no GPUs" in rows["1"]
    assert "1 done, 0 skipped, 2 failed" in out
    assert_same_outputs(tmp_path / "out" / "shot0", shots_root[0] / "ref" / "shot0")


def test_ray_interrupted_batch_is_finished_by_a_rerun(local_ray, shots_root, tmp_path, capsys):
    shots_json = fresh_copy(shots_root, tmp_path)
    first_marker = tmp_path / "out" / "shot0" / "memvos-done.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    address = ray.get_runtime_context().gcs_address  # the batch joins this module's instance by address
    proc = subprocess.Popen([sys.executable, "-m", "memvos_core", "batch", str(shots_json), "--ray", address,
                             "--workers", "1", "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not first_marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    markers = [(tmp_path / "out" / f"shot{k}" / "memvos-done.json").exists() for k in range(3)]
    assert markers[0] and not all(markers), markers

    assert main(["batch", str(shots_json), "--ray", "auto", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "skipped" in next(line for line in table.splitlines() if line.startswith("0 "))
    for k in range(3):
        assert_same_outputs(tmp_path / "out" / f"shot{k}", shots_root[0] / "ref" / f"shot{k}")
