"""The command line: fixture runs A-D (their settings; C and D end to end), colour masks, its messages, and
bad inputs refused before any weights are touched."""
import dataclasses
import shutil
import socket

import numpy as np
import pytest
import torch
from PIL import Image

import xmem_fixture as fx
from memvos_core import weights as core_weights
from memvos_core.command.cli import build_parser, main
from memvos_core.shot import make_config
from memvos_core.media_io.media import read_soft_png

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
def test_cli_settings_of_each_fixture_run_are_the_reference_settings(run):
    """The command line's options give each reference run's engine settings; the engine reproduces
    every run with those settings (test_engine_parity), so two of them end to end below suffice."""
    args = build_parser().parse_args(["--frames", "f", "--masks", "m", "--out", "o", *RUN_SETTINGS[run]])
    assert make_config(args, fx.NUM_FRAMES, "xmem") == fx.memory_config(run)


@pytest.mark.parametrize("run", ["C", "D"])  # one per memory mode
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


def test_cli_default_pipeline_with_session_file(weights_file, tmp_path, capsys):
    out = tmp_path / "out"
    session_file = tmp_path / "shot.safetensors"
    rc = cli("--frames", fx.ROOT / "clip" / "frames", "--masks", fx.run_dir("D") / "annotations",
             "--out", out, "--weights", weights_file, "--size", 64, "--save-session", session_file)
    assert rc == 0 and session_file.is_file()
    assert len(list(out.glob("*.png"))) == fx.NUM_FRAMES
    said = capsys.readouterr().out
    assert f"wrote {fx.NUM_FRAMES} masks to {out.resolve()}" in said and str(session_file.resolve()) in said
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
            arr[20:30, 20:30] = 1
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


def test_colour_masks_give_one_object_per_colour(weights_file, tmp_path):
    """Run A's keyframe painted in pure colours: each colour is an object, numbered in reading order."""
    ids = np.array(Image.open(fx.annotation_path("A", 0)))
    first_seen = [int(v) for v in dict.fromkeys(ids.reshape(-1).tolist()) if v]
    colours = {first_seen[0]: (0, 255, 0), first_seen[1]: (255, 0, 0)}  # green first, so not the DAVIS order
    rgb = np.zeros((*ids.shape, 3), np.uint8)
    for object_id, colour in colours.items():
        rgb[ids == object_id] = colour
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(rgb).save(masks / "00000.png")
    out = tmp_path / "out"
    assert cli("--frames", fx.ROOT / "clip" / "frames", "--masks", masks, "--out", out, "--weights", weights_file,
               "--size", 32, "--direction", "forward", "--end", 2, "--device", "cpu") == 0
    expected = np.zeros_like(ids)
    for number, object_id in enumerate(first_seen, start=1):
        expected[ids == object_id] = number
    assert np.array_equal(np.array(Image.open(out / "00000.png")), expected)
    assert sorted(p.name for p in out.glob("*.png")) == ["00000.png", "00001.png"]


def _never(*args, **kwargs):
    raise AssertionError("weights were touched before every input was checked")


@pytest.mark.parametrize("case, expected", [
    ("size_zero", "--size 0: give the shorter side"),
    ("size_negative", "--size -3: give the shorter side"),
    ("mixed_frame_sizes", "00007.png is 93x55 but 00000.png is 187x109: all frames of a shot must have one size"),
    ("colour_jpeg", "mask 00000.jpg is a colour JPEG"),
    ("mask_of_another_size", "mask 00000.png is 50x30 but frame 00000 is 187x109: masks must match their frames"),
    ("no_frame", "mask 00099.png matches no frame"),
    ("unknown_weights", "--weights MyXMem.pth: no such file here"),
])
def test_bad_inputs_are_one_line_before_any_weights(case, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(core_weights, "ensure_weights", _never)
    monkeypatch.setattr("memvos_core.runtime.model.load_model", _never)
    frames = copy_clip(tmp_path)
    masks = tmp_path / "masks"
    masks.mkdir()
    good = Image.open(fx.annotation_path("A", 0))
    good.save(masks / "00000.png")
    args = {"--size": 64, "--weights": "XMem.pth"}
    if case == "size_zero":
        args["--size"] = 0
    elif case == "size_negative":
        args["--size"] = -3
    elif case == "mixed_frame_sizes":
        Image.open(frames / "00007.png").resize((93, 55)).save(frames / "00007.png")
    elif case == "colour_jpeg":
        (masks / "00000.png").unlink()
        colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)[np.array(good)]
        Image.fromarray(colours).save(masks / "00000.jpg", quality=95)
    elif case == "mask_of_another_size":
        good.resize((50, 30)).save(masks / "00000.png")
    elif case == "no_frame":
        good.save(masks / "00099.png")
    elif case == "unknown_weights":
        args["--weights"] = "MyXMem.pth"
    rc = cli("--frames", frames, "--masks", masks, "--out", tmp_path / "out", "--device", "cpu",
             *[str(v) for pair in args.items() for v in pair])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert expected in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "out").exists()


def test_a_failed_download_says_how_to_work_offline(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    known = core_weights.KNOWN_CHECKPOINTS["XMem.pth"]
    monkeypatch.setitem(core_weights.KNOWN_CHECKPOINTS, "XMem.pth",
                        dataclasses.replace(known, url=f"http://127.0.0.1:{port}/XMem.pth"))
    rc = cli("--frames", fx.ROOT / "clip" / "frames", "--masks", fx.run_dir("A") / "annotations",
             "--out", tmp_path / "out", "--weights", "XMem.pth", "--models-dir", tmp_path / "models", "--device", "cpu")
    err = capsys.readouterr().err
    assert rc == 2 and "could not download" in err
    assert "--weights FILE" in err and "MEMVOS_MODELS_DIR" in err and str(tmp_path / "models") in err
    assert err.strip().count("\n") == 0, err


def test_help_describes_every_option_with_its_default():
    parser = build_parser()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help and len(action.help) > 20, action.dest
        assert "default:" in action.help or action.required, f"{action.option_strings}: no default in the help"
    text = parser.format_help()
    assert "%(" not in text and "Mask files" in text and "order of first appearance" in text
