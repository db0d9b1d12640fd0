"""Three tiny shots cut from the parity clip, for the batch tests and bench/bench_batch.py.

Each shot is 8 frames of the 109x187 clip with one keyframe mask, and its own mix of options
(a ``set`` mapping, soft outputs, both directions), so the batch is compared with single-shot
runs on more than the defaults.
"""
import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CLIP = Path(__file__).resolve().parent / "fixtures" / "xmem_parity"
SHOT_RANGES = ((0, 8), (4, 12), (8, 16))
SHOT_OPTIONS = (
    {"direction": "forward", "set": {"mem_every": 2, "top_k": 10}},
    {"direction": "forward", "soft": True, "memory": "xmem"},
    {"direction": "both", "size": 48},
)


def write_weights(folder):
    from memvos_core.network.synthetic import synthetic_state_dict
    path = Path(folder) / "XMem.pth"
    if not path.exists():
        torch.save(synthetic_state_dict(), path)
    return path


def make_shots(root, weights, size=64, frames_per_shot=8):
    """Frames and masks of three shots under ``root``; returns their JSON objects (paths
    relative to ``root``, where SHOTS.json goes) with outputs in ``root/out/shotK``."""
    root = Path(root)
    shots = []
    for k, ((first, _), options) in enumerate(zip(SHOT_RANGES, SHOT_OPTIONS)):
        folder = root / f"shot{k}"
        (folder / "frames").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(exist_ok=True)
        for t in range(first, first + frames_per_shot):
            shutil.copy(CLIP / "clip" / "frames" / f"{t:05d}.png", folder / "frames" / f"{t:05d}.png")
        # the clip's first keyframe, given to this shot's first frame (an object where it roughly is)
        shutil.copy(CLIP / "run_D" / "annotations" / "00000.png", folder / "masks" / f"{first:05d}.png")
        shots.append({"frames": f"shot{k}/frames", "masks": f"shot{k}/masks", "out": f"out/shot{k}",
                      "weights": str(weights), "device": "cpu", "size": size, **options})
    return shots


def write_shots_json(root, shots, name="shots.json"):
    path = Path(root) / name
    path.write_text(json.dumps(shots, indent=1))
    return path


def single_shot_argv(shot, root, out):
    """The single-shot CLI arguments an artist would type for ``shot`` (writing to ``out``)."""
    argv = []
    for key, value in shot.items():
        flag = "--" + key.replace("_", "-")
        if key == "out":
            value = out
        elif key in ("frames", "masks"):
            value = Path(root) / value
        if value is True:
            argv.append(flag)
        elif key == "set":
            for k, v in value.items():
                argv += ["--set", f"{k}={v}"]
        else:
            argv += [flag, str(value)]
    return argv + ["--quiet"]


def output_files(folder):
    """Every output file under ``folder`` (relative names), without the batch's done-marker."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and p.name != "memvos-done.json")


def assert_same_outputs(out, ref):
    names = output_files(ref)
    assert names and output_files(out) == names, (out, ref)
    for name in names:
        a, b = Image.open(Path(out) / name), Image.open(Path(ref) / name)
        assert a.mode == b.mode and np.array_equal(np.array(a), np.array(b)), (out, name)


@contextlib.contextmanager
def one_torch_thread():
    """Single-shot references computed as a one-thread worker computes (OMP_NUM_THREADS=1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_references = {}


def reference_shots(tmp_path_factory):
    """``(root, shots)``: the three shots and their single-shot CLI outputs in ``root/ref/shotK``,
    made once per test session (the process-pool and the Ray tests compare with the same runs)."""
    if "root" not in _references:
        from memvos_core.command.cli import main
        root = tmp_path_factory.mktemp("batch_shots")
        shots = make_shots(root, write_weights(root))
        with one_torch_thread():
            for k, shot in enumerate(shots):
                assert main(single_shot_argv(shot, root, root / "ref" / f"shot{k}")) == 0
        _references.update(root=root, shots=shots)
    return _references["root"], _references["shots"]


def fresh_copy(references, folder):
    """The reference shots' inputs in ``folder`` (no outputs yet) with their SHOTS.json."""
    root, shots = references
    for k in range(len(shots)):
        shutil.copytree(root / f"shot{k}", Path(folder) / f"shot{k}")
    return write_shots_json(folder, shots)


def record_progress(monkeypatch):
    """Make the batch command's progress display keep every ``frames`` report it gets from the
    workers; returns the list ``(shot, done, total)`` it fills."""
    from memvos_core.batch import command
    from memvos_core.batch.progress import BatchProgress
    seen = []

    class Recording(BatchProgress):
        def frames(self, index, done, total):
            seen.append((index, done, total))
            super().frames(index, done, total)
    monkeypatch.setattr(command, "BatchProgress", Recording)
    return seen
