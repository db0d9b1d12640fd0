"""Disk to disk: masks stream out as frames become final, an interrupted run keeps them, and
--resume finishes with exactly the masks of an uninterrupted run."""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memvos_core.command.cli import main
from memvos_core.runtime.model import load_model
from memvos_core.session import CheckpointMismatch, PropagationCancelled
from memvos_core.command.streaming import CACHE_NAME, propagate_to_folder
from session_helpers import moving_discs, session_with_keys

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(synthetic_weights):
    return load_model(synthetic_weights)


class Shot:
    """Frames with stems, as the command line reads them."""

    def __init__(self, frames):
        self.frames = frames
        self.stems = [f"{i:05d}" for i in range(len(frames))]

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return self.frames[i]


def outputs(folder):
    """Every PNG under ``folder`` (relative path -> bytes of the decoded image)."""
    return {str(p.relative_to(folder)): np.array(Image.open(p)).tobytes()
            for p in sorted(Path(folder).rglob("*.png"))}


def stop_after(n):
    count = [0]

    def cancel():
        count[0] += 1
        return count[0] > n
    return cancel


@pytest.mark.parametrize("mode, stop", [("xmem++", 4), ("xmem++", 15), ("xmem", 11)])
def test_cancel_then_resume_writes_the_same_masks(model, tmp_path, mode, stop):
    frames, labels = moving_discs(num_frames=16)
    shot = Shot(frames)
    s = session_with_keys(model, frames, labels, [4, 10], mode=mode, internal_size=32)
    kw = dict(direction="both", soft=True, checkpoint_every=3)
    _, whole = propagate_to_folder(s, shot, tmp_path / "whole", **kw)
    reference = outputs(tmp_path / "whole")
    assert len(reference) == 16 * 3 and not (tmp_path / "whole" / CACHE_NAME).exists()

    out = tmp_path / "out"
    with pytest.raises(PropagationCancelled):
        propagate_to_folder(s, shot, out, cancel=stop_after(stop), **kw)
    partial = outputs(out)
    # The backward pass covers frames 10..0 (11 frames); frames 3..0 are final during it.
    expected_final = {4: 0, 11: 4, 15: 8}[stop]
    assert len(partial) == expected_final * 3
    assert all(reference[name] == data for name, data in partial.items())
    assert (out / CACHE_NAME / "checkpoint.safetensors").is_file()
    assert not list(out.rglob(".*.part"))

    calls = []
    _, resumed = propagate_to_folder(s, shot, out, resume=True, progress=lambda d, t: calls.append((d, t)), **kw)
    assert outputs(out) == reference
    assert calls[0][0] == stop + 1 and calls[-1] == (stop + len(calls), 11 + 12)  # continued, not restarted
    assert not (out / CACHE_NAME).exists()


class LateCopies:
    """Device events that finish only when waited for: every result reaches the session
    ``depth`` frames after its frame was computed, as on a busy GPU."""

    def __init__(self, device):
        self.done = False

    def record(self):
        pass

    def query(self):
        return self.done

    def synchronize(self):
        self.done = True


def test_results_handed_over_late_still_checkpoint_and_resume_exactly(model, tmp_path, monkeypatch):
    """With the copies to the host running behind the engine (CUDA), checkpoints and a cancel
    wait for them: the resumed run writes the masks of an uninterrupted one."""
    from memvos_core.session import directional
    from memvos_core.runtime.transfer import HostCopies
    frames, labels = moving_discs(num_frames=16)
    shot = Shot(frames)
    s = session_with_keys(model, frames, labels, [4, 10], internal_size=32)
    kw = dict(direction="both", checkpoint_every=2)
    propagate_to_folder(s, shot, tmp_path / "whole", **kw)
    monkeypatch.setattr(directional, "HostCopies",
                        lambda: HostCopies(depth=3, asynchronous=True, make_event=LateCopies))
    with pytest.raises(PropagationCancelled):
        propagate_to_folder(s, shot, tmp_path / "out", cancel=stop_after(14), **kw)
    propagate_to_folder(s, shot, tmp_path / "out", resume=True, **kw)
    assert outputs(tmp_path / "out") == outputs(tmp_path / "whole")


def test_a_crash_resumes_from_the_last_periodic_checkpoint(model, tmp_path):
    """A failure outside a frame boundary saves nothing: the resume recomputes from the last
    periodic checkpoint, and the backward results it needs are still there."""
    frames, labels = moving_discs(num_frames=14)
    shot = Shot(frames)
    s = session_with_keys(model, frames, labels, [2, 11], internal_size=32)
    kw = dict(direction="both", checkpoint_every=4)
    propagate_to_folder(s, shot, tmp_path / "whole", **kw)

    def crash(done, total):
        if done == 19:   # in the forward pass, 3 frames after its checkpoint at 16
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        propagate_to_folder(s, shot, tmp_path / "out", progress=crash, **kw)
    propagate_to_folder(s, shot, tmp_path / "out", resume=True, **kw)
    assert outputs(tmp_path / "out") == outputs(tmp_path / "whole")


def test_resume_refuses_a_checkpoint_of_another_run(model, tmp_path):
    frames, labels = moving_discs(num_frames=10)
    shot = Shot(frames)
    s = session_with_keys(model, frames, labels, [0, 8], internal_size=32)
    with pytest.raises(PropagationCancelled):
        propagate_to_folder(s, shot, tmp_path, direction="both", cancel=stop_after(5))
    other = session_with_keys(model, frames, labels, [0, 7], internal_size=32)
    with pytest.raises(CheckpointMismatch) as err:
        propagate_to_folder(other, shot, tmp_path, direction="both", resume=True)
    assert "keyframes" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointMismatch, match="soft"):
        propagate_to_folder(s, shot, tmp_path, direction="both", resume=True, soft=True)
    # Without --resume the run starts over and finishes.
    propagate_to_folder(other, shot, tmp_path, direction="both")
    assert len(list(tmp_path.glob("*.png"))) == 10


# ---------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def shot_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("shot")
    frames, labels = moving_discs(num_frames=40, height=64, width=96)
    (root / "frames").mkdir()
    (root / "masks").mkdir()
    for t in range(40):
        Image.fromarray((frames[t].numpy() * 255).round().astype(np.uint8)).save(root / "frames" / f"{t:05d}.png")
    for t in (5, 30):
        img = Image.fromarray(labels[t].numpy(), mode="P")
        img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        img.save(root / "masks" / f"{t:05d}.png")
    return root


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, synthetic_weights):
    path = tmp_path_factory.mktemp("weights") / "XMem.pth"
    torch.save(synthetic_weights, path)
    return path


def cli_args(shot_folder, weights_file, out):
    return ["--frames", shot_folder / "frames", "--masks", shot_folder / "masks", "--out", out,
            "--weights", weights_file, "--device", "cpu", "--size", 32, "--soft", "--checkpoint-every", 2]


def test_ctrl_c_then_resume_on_the_command_line(shot_folder, weights_file, tmp_path):
    assert main([str(a) for a in cli_args(shot_folder, weights_file, tmp_path / "whole")] + ["--quiet"]) == 0
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=str(torch.get_num_threads()))  # bit-equal masks need this process's thread count
    proc = subprocess.Popen([sys.executable, "-m", "memvos_core", *map(str, cli_args(shot_folder, weights_file, out))],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    checkpoint = out / CACHE_NAME / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    # Interrupt once some masks are out (frames 4..0 are final at the end of the backward pass).
    while (len(list(out.glob("*.png"))) < 3 or not checkpoint.exists()) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    finished = outputs(out)
    whole = outputs(tmp_path / "whole")
    assert 0 < len(finished) < len(whole) and all(whole[k] == v for k, v in finished.items())
    assert main([str(a) for a in cli_args(shot_folder, weights_file, out)] + ["--quiet", "--resume"]) == 0
    assert outputs(out) == whole


def test_a_full_disk_while_writing_masks_is_one_line(shot_folder, weights_file, tmp_path, monkeypatch, capsys):
    real_save = Image.Image.save
    calls = [0]

    def save(self, fp, *a, **kw):
        calls[0] += 1
        if calls[0] > 5:
            with open(fp, "wb") as f:
                f.write(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *a, **kw)

    monkeypatch.setattr(Image.Image, "save", save)
    out = tmp_path / "out"
    rc = main([str(a) for a in cli_args(shot_folder, weights_file, out)] + ["--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "disk is full" in err and len(err.strip().splitlines()) == 1
    assert not list(out.rglob(".*.part"))
    for png in out.rglob("*.png"):
        Image.open(png).load()   # every file under a real name is whole


def test_a_cache_folder_that_cannot_be_written_is_one_line(shot_folder, weights_file, tmp_path, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    rc = main([str(a) for a in cli_args(shot_folder, weights_file, tmp_path / "out")]
              + ["--quiet", "--cache-dir", str(blocker / "cache")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a writable folder" in err and str(blocker) in err
    assert len(err.strip().splitlines()) == 1
