"""The command line: fixture runs A-D reproduced end to end, and its error messages."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import xmem_fixture as fx
from memvos_core.cli import main
from memvos_core.media import read_soft_png

RUN_SETTINGS = {
    "A": ["--memory", "xmem"],
    "B": ["--memory", "xmem", "--set", "mem_every=2", "--set", "min_mid_term_frames=2",
          "--set", "max_mid_term_frames=3", "--set", "num_prototypes=12", "--set", "max_long_term_elements=42"],
    "C": ["--memory", "xmem"],
    "D": ["--memory", "xmem++", "--set", "mem_every=3"],
}


@pytest.fixture(scope="module")
def weights_file(synthetic_weights_file):
    return synthetic_weights_file


def cli(*args):
    return main([str(a) for a in args] + ["--quiet"])


@pytest.mark.parametrize("run", ["A", "B", "C", "D"])
def test_cli_reproduces_fixture_run(run, weights_file, tmp_path):
    out = tmp_path / "out"
    rc = cli("--frames", fx.ROOT / "clip" / "frames", "--masks", fx.run_dir(run) / "annotations",
             "--out", out, "--weights", weights_file, "--size", -1, "--direction", "forward",
             "--device", "cpu", "--soft", *RUN_SETTINGS[run])
    assert rc == 0
    refs = fx.reference_probs(run)
    for t in range(fx.NUM_FRAMES):
        stem = f"{t:05d}"
        labels = Image.open(out / f"{stem}.png")
        assert labels.mode == "P" and labels.getpalette()[3:6] == [128, 0, 0]  # DAVIS palette
        ref = refs[t]
        ids = list(range(1, ref.shape[0]))
        objects = torch.stack([read_soft_png(out / "soft" / str(o) / f"{stem}.png") for o in ids])
        prob = torch.cat([1 - objects.sum(0, keepdim=True), objects])
        diff, flips = fx.compare(prob, ref)
        assert diff <= fx.PROB_TOL and flips == 0, (run, t, diff, flips)
        decisive = (ref.topk(2, 0).values[0] - ref.topk(2, 0).values[1]) > fx.DECISIVE_MARGIN
        ours = torch.from_numpy(np.array(labels)).long()
        assert torch.equal(ours[decisive], ref.argmax(0)[decisive])


def test_cli_default_pipeline_with_session_file(weights_file, tmp_path):
    out = tmp_path / "out"
    session_file = tmp_path / "shot.safetensors"
    rc = cli("--frames", fx.ROOT / "clip" / "frames", "--masks", fx.run_dir("D") / "annotations",
             "--out", out, "--weights", weights_file, "--size", 64, "--save-session", session_file)
    assert rc == 0 and session_file.is_file()
    assert len(list(out.glob("*.png"))) == fx.NUM_FRAMES
    assert np.array(Image.open(out / "00010.png")).shape == (109, 187)


def copy_clip(tmp_path):
    frames = tmp_path / "frames"
    shutil.copytree(fx.ROOT / "clip" / "frames", frames)
    return frames


@pytest.mark.parametrize("case, expected", [
    ("missing_frames", "not a folder of images"),
    ("size_mismatch", "must match their frames"),
    ("unknown_frame", "matches no frame"),
    ("void_index", "index 255"),
    ("empty_mask", "is empty"),
    ("corrupt_weights", "could not be read"),
])
def test_cli_errors_are_clear(case, expected, weights_file, tmp_path, capsys):
    frames = copy_clip(tmp_path)
    masks = tmp_path / "masks"
    masks.mkdir()
    good = Image.open(fx.annotation_path("A", 0))
    good.save(masks / "00000.png")
    weights = weights_file
    if case == "missing_frames":
        frames = tmp_path / "nowhere"
    elif case == "size_mismatch":
        good.resize((50, 30)).save(masks / "00000.png")
    elif case == "unknown_frame":
        good.save(masks / "00099.png")
    elif case in ("void_index", "empty_mask"):
        arr = np.array(good)
        arr[:] = 0
        if case == "void_index":
            arr[5:10, 5:10] = 255
        img = Image.fromarray(arr, mode="P")
        img.putpalette(good.getpalette())
        img.save(masks / "00000.png")
    elif case == "corrupt_weights":
        weights = tmp_path / "XMem.pth"
        weights.write_bytes(weights_file.open("rb").read(1000))
    rc = cli("--frames", frames, "--masks", masks, "--out", tmp_path / "out", "--weights", weights,
             "--device", "cpu", "--size", -1)
    err = capsys.readouterr().err
    assert rc == 2
    assert expected in err and "Traceback" not in err


def test_demo_job_on_the_bundled_example_video(weights_file, tmp_path):
    """What scripts/demo.sh runs (with generated weights instead of the download)."""
    media = fx.ROOT.parents[2] / "examples_workflows" / "media"
    out = tmp_path / "demo"
    rc = cli("--frames", media / "memvos_example_clip.mp4", "--masks", media / "cli_masks",
             "--out", out, "--weights", weights_file, "--size", -1, "--direction", "both")
    assert rc == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 16 and pngs[0].name == "00000.png"
    key = np.array(Image.open(out / "00010.png"))
    assert np.array_equal(key, np.array(Image.open(media / "cli_masks" / "00010.png")))
