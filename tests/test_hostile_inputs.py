"""Hostile and unlucky inputs outside ComfyUI (issue 19): each fault one clear line, nothing
written over an input, nothing half-written. Numbers in the test names are the issue's."""
import errno
import hashlib
import json
import os
import re
import shutil
import struct
import zlib

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import xmem_fixture as fx
from memvos_core.media_io import media
from memvos_core.batch import spec
from memvos_core.command.cli import main
from memvos_core.runtime.model import load_model
from memvos_core.network import CheckpointError
from memvos_core.session import Session, SessionFileError
from memvos_core.session import storage
from session_helpers import moving_discs, session_with_keys

ANNOTATIONS = fx.run_dir("D") / "annotations"


@pytest.fixture(scope="module")
def model(synthetic_weights):
    return load_model(synthetic_weights)


def cli(*args):
    return main([str(a) for a in args] + ["--quiet"])


def one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def tree_digest(folder):
    """Names and bytes of everything under ``folder``: proof that nothing changed."""
    digest = hashlib.sha256()
    for base, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


@pytest.fixture
def shot_dirs(tmp_path):
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    shutil.copytree(fx.ROOT / "clip" / "frames", frames)
    shutil.copytree(ANNOTATIONS, masks)
    return frames, masks


# ------------------------------------------------------------------ 1. outputs over inputs

@pytest.mark.parametrize("case", ["out=frames", "out=masks", "out=link to frames", "out inside frames",
                                  "out=frames/../frames", "session in masks", "cache-dir=masks"])
def test_1_outputs_never_land_on_inputs(case, shot_dirs, tmp_path, capsys, weights_file):
    frames, masks = shot_dirs
    (tmp_path / "link").symlink_to(frames, target_is_directory=True)
    before = tree_digest(tmp_path)
    out, extra = tmp_path / "out", []
    if case == "out=frames":
        out = frames
    elif case == "out=masks":
        out = masks
    elif case == "out=link to frames":
        out = tmp_path / "link"
    elif case == "out inside frames":
        out = frames / "masks_out"
    elif case == "out=frames/../frames":
        out = frames / ".." / "frames"
    elif case == "session in masks":
        extra = ["--save-session", masks / "shot.safetensors"]
    else:
        extra = ["--cache-dir", masks]
    rc = cli("--frames", frames, "--masks", masks, "--out", out, "--weights", weights_file, *extra)
    err = one_line(capsys)
    assert rc == 2 and "outside the inputs" in err and ("--frames" in err or "--masks" in err), err
    assert tree_digest(tmp_path) == before  # nothing written anywhere


def test_1_batch_output_over_another_shots_inputs(shot_dirs, tmp_path):
    frames, masks = shot_dirs
    other = tmp_path / "other_frames"
    other.mkdir()
    (tmp_path / "other_link").symlink_to(other, target_is_directory=True)
    shots = [{"frames": str(other), "masks": str(masks), "out": str(tmp_path / "out0")},
             {"frames": str(frames), "masks": str(masks), "out": "other_link"}]
    with pytest.raises(spec.ShotSpecError) as caught:
        spec.check_shots(shots, tmp_path)
    assert caught.value.errors == [
        f"shot 1, key 'out' other_link is key 'frames' of shot 0 {other} (compared with links followed): "
        "writing there would overwrite or add to an input; give key 'out' a path outside the inputs"
        .replace("other_link", str(tmp_path / "other_link"))]


@pytest.fixture(scope="module")
def weights_file(synthetic_weights_file):
    return synthetic_weights_file


# ------------------------------------------------------------------ 4. damaged session files

@pytest.fixture(scope="module")
def saved_session(model, tmp_path_factory):
    frames, labels = moving_discs(6, 48, 64)
    session = session_with_keys(model, frames, labels, [0], internal_size=32)
    session, _ = session.propagate(frames)
    path = tmp_path_factory.mktemp("session") / "good.safetensors"
    session.save(path)
    return path


def rewrite(source, target, change_meta=None, raw=None, change_tensors=None):
    with safe_open(str(source), framework="pt") as f:
        meta = json.loads(f.metadata()["memvos"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if change_meta is not None:
        meta = change_meta(meta)
    if change_tensors is not None:
        change_tensors(tensors)
    save_file(tensors, str(target), metadata={"memvos": raw if raw is not None else json.dumps(meta)})
    return target


def _without(key, inner=None):
    def change(meta):
        (meta["passes"]["forward"] if inner else meta).pop(key)
        return meta
    return change


def _set(path_keys, value):
    def change(meta):
        node = meta
        for k in path_keys[:-1]:
            node = node[k]
        node[path_keys[-1]] = value
        return meta
    return change


@pytest.mark.parametrize("case, change, expected", [
    ("no passes", dict(change_meta=_without("passes")), "passes is missing"),
    ("no direction", dict(change_meta=_without("direction", inner=True)), "passes.forward.direction is missing"),
    ("metadata a list", dict(raw="[1, 2]"), "format None"),
    ("internal_size big", dict(change_meta=_set(["internal_size"], "big")), "internal_size is 'big'"),
    ("not JSON", dict(raw="{nope"), "its metadata is not valid JSON"),
    ("deep JSON", dict(raw="[" * 5000 + "]" * 5000), "nested too deeply"),
    ("object id 300", dict(change_meta=_set(["keyframes", 0, "object_ids"], [1, 300])),
     "keyframes[0].object_ids is [1, 300], expected a list of object ids 1..255"),
    ("labels int64", dict(change_tensors=lambda t: t.update({"keyframe0.labels": t["keyframe0.labels"].long()})),
     "tensor keyframe0.labels is int64"),
])
def test_4_damaged_session_files_are_one_line_naming_the_file(case, change, expected, saved_session, model,
                                                               tmp_path):
    damaged = rewrite(saved_session, tmp_path / "damaged.safetensors", **change)
    with pytest.raises(SessionFileError) as caught:
        Session.load(damaged, model)
    message = str(caught.value)
    assert expected in message and str(damaged) in message and "\n" not in message, message


def test_4_a_damaged_checkpoint_through_resume_is_one_line(saved_session, shot_dirs, tmp_path, capsys,
                                                          weights_file):
    from memvos_core.command.streaming import CACHE_NAME, CHECKPOINT_NAME
    frames, masks = shot_dirs
    out = tmp_path / "out"
    (out / CACHE_NAME).mkdir(parents=True)
    rewrite(saved_session, out / CACHE_NAME / CHECKPOINT_NAME, raw="{nope")
    rc = cli("--frames", frames, "--masks", masks, "--out", out, "--weights", weights_file, "--size", 32,
             "--resume")
    err = one_line(capsys)
    assert rc == 2 and CHECKPOINT_NAME in err and "not valid JSON" in err and "without --resume" in err, err


# ------------------------------------------------------------------ 5. decompression bombs

def bomb_png(path, width=30000, height=30000):
    """A PNG whose header claims ``width`` x ``height`` (a few hundred bytes on disk)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("where", ["frame", "mask"])
def test_5_decompression_bomb_is_one_line(where, shot_dirs, tmp_path, capsys, weights_file):
    frames, masks = shot_dirs
    bomb_png(frames / "00003.png" if where == "frame" else masks / "00000.png")
    rc = cli("--frames", frames, "--masks", masks, "--out", tmp_path / "out", "--weights", weights_file)
    err = one_line(capsys)
    name = "00003.png" if where == "frame" else "00000.png"
    assert rc == 2 and "MEMVOS_MAX_PIXELS" in err and name in err and "900,000,000 pixels" in err, err
    assert not (tmp_path / "out").exists()


def test_5_the_pixel_limit_is_checked_before_decoding_and_can_be_changed(tmp_path, monkeypatch):
    small = tmp_path / "small"
    small.mkdir()
    Image.new("RGB", (16, 16)).save(small / "0.png")
    monkeypatch.setenv("MEMVOS_MAX_PIXELS", "100")
    with pytest.raises(media.MediaError, match=r"frame .*0.png is 16x16 \(256 pixels\), over the limit of 100"):
        media.FolderFrames(small)[0]
    monkeypatch.setenv("MEMVOS_MAX_PIXELS", "256")
    assert media.FolderFrames(small)[0].shape == (16, 16, 3)
    bomb = bomb_png(small / "1.png")
    monkeypatch.delenv("MEMVOS_MAX_PIXELS")
    with pytest.raises(media.MediaError, match="900,000,000 pixels"):
        with media.open_image(bomb, "frame"):
            pass


# ------------------------------------------------------------------ 6. saving to a bad disk

def test_6_save_session_to_a_bad_place_is_one_line_and_leaves_nothing(saved_session, model, tmp_path,
                                                                      monkeypatch):
    session = Session.load(saved_session, model)
    long_name = tmp_path / ("x" * 300 + ".safetensors")
    with pytest.raises(SessionFileError, match="File name too long.*choose a shorter one"):
        session.save(long_name, what="--save-session")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SessionFileError, match="^--save-session: could not write"):
        session.save(blocker / "s.safetensors", what="--save-session")

    def full(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half")
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                           '"No space left on device" })')
    full.__name__ = "save_file"
    monkeypatch.setattr(storage, "save_file", _as_safetensor_error(full))
    with pytest.raises(SessionFileError, match=r"\(No space left on device\): the disk is full"):
        session.save(tmp_path / "s.safetensors")

    def read_only(tensors, path, metadata=None):
        raise OSError(errno.EROFS, "Read-only file system", path)
    monkeypatch.setattr(storage, "save_file", read_only)
    with pytest.raises(SessionFileError, match="Read-only file system.*cannot be written"):
        session.save(tmp_path / "s.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no .part left


def _as_safetensor_error(fails):
    """``fails`` raising safetensors' own error type, as its Rust writer does on an I/O error."""
    from safetensors import SafetensorError

    def save(tensors, path, metadata=None):
        try:
            fails(tensors, path, metadata)
        except RuntimeError as exc:
            raise SafetensorError(str(exc)) from None
    return save


def test_6_checkpoint_into_a_full_cache_dir_is_one_line(shot_dirs, tmp_path, capsys, monkeypatch, weights_file):
    def full(tensors, path, metadata=None):
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                           '"No space left on device" })')
    monkeypatch.setattr(storage, "save_file", _as_safetensor_error(full))
    frames, masks = shot_dirs
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc = cli("--frames", frames, "--masks", masks, "--out", out, "--weights", weights_file, "--size", 32,
             "--cache-dir", cache, "--checkpoint-every", 2, "--direction", "forward")
    err = one_line(capsys)
    assert rc == 2 and err.startswith("error: checkpoint: could not write") and "disk is full" in err, err
    assert not list(cache.rglob(".*.part")) and not list(out.rglob(".*.part"))


def test_6_cli_save_session_failure_is_one_line(shot_dirs, tmp_path, capsys, weights_file):
    frames, masks = shot_dirs
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    rc = cli("--frames", frames, "--masks", masks, "--out", tmp_path / "out", "--weights", weights_file,
             "--size", 32, "--direction", "forward", "--save-session", blocker / "s.safetensors")
    err = one_line(capsys)
    assert rc == 2 and err.startswith("error: --save-session: could not write") and "Not a directory" in err, err


# ------------------------------------------------------------------ 7. absurd weights

@pytest.mark.parametrize("damage, expected", [("nan", "NaN or infinite"), ("huge", "values beyond +-1e+06")])
def test_7_weights_with_absurd_values_are_refused_naming_the_tensor(damage, expected, synthetic_weights, tmp_path,
                                                                   capsys, shot_dirs):
    weights = dict(synthetic_weights)
    key = "decoder.pred.weight"
    weights[key] = torch.full_like(weights[key], float("nan")) if damage == "nan" else weights[key] * 1e30
    with pytest.raises(CheckpointError, match=re.escape(f"tensor {key} holds {expected}")):
        load_model(weights)
    path = tmp_path / "bad.pth"
    torch.save(weights, path)
    frames, masks = shot_dirs
    rc = cli("--frames", frames, "--masks", masks, "--out", tmp_path / "out", "--weights", path)
    err = one_line(capsys)
    assert rc == 2 and "bad.pth" in err and key in err, err


def test_7_the_generated_weights_pass_the_value_check(model):
    assert model.network is not None  # load_model ran the check on every tensor


# ------------------------------------------------------------------ 8. deep JSON

def test_8_deeply_nested_shots_json_is_one_line(tmp_path):
    path = tmp_path / "shots.json"
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(spec.ShotSpecError, match="nested too deeply"):
        spec.load_shots(path)


def test_8_a_vanishing_feather_radius_blurs_nothing_instead_of_nan():
    """Found by the fuzz suite: Refine feather_px 2.3e-202 (a link) gave all-NaN masks."""
    from memvos_core.ops.refine import blur
    planes = torch.rand(1, 2, 8, 8)
    for radius in (2.3e-202, 1e-3):
        assert torch.equal(blur(planes, radius), planes)
