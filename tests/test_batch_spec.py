"""SHOTS.json checks: every shot validated before anything runs, errors naming shot and key;
shot keys are the single-shot CLI's options (new ones flow in); --ray without Ray."""
import argparse
import json
import sys

import pytest

from memvos_core.command import cli
from memvos_core.batch import marker, spec
from memvos_core.batch.command import plan

GOOD = {"frames": "f", "masks": "m", "out": "o0"}


def write(tmp_path, data):
    path = tmp_path / "shots.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def refused(tmp_path, data):
    with pytest.raises(spec.ShotSpecError) as info:
        spec.load_shots(write(tmp_path, data))
    return info.value.errors


@pytest.mark.parametrize("bad, expected", [
    ({"colour": "red"}, "shot 1, key 'colour': not an option of the single-shot CLI"),
    ({"direction": "sideways"}, "shot 1, key 'direction': invalid choice: 'sideways'"),
    ({"size": "big"}, "shot 1, key 'size': invalid int value: 'big'"),
    ({"size": True}, "shot 1, key 'size': expected a string or a number"),
    ({"soft": "yes"}, "shot 1, key 'soft': expected true or false"),
    ({"precision": "fp8"}, "shot 1, key 'precision': invalid choice"),
    ({"tta_scales": ["x"]}, "shot 1, key 'tta_scales': invalid float value"),
    ({"set": {"mem_evry": 3}}, "shot 1, key 'set': --set mem_evry: unknown memory setting"),
    ({"set": {"mem_every": 0}}, "shot 1, key 'set': memory setting mem_every=0 must be at least 1"),
    ({"set": {"min_mid_term_frames": 12}}, "shot 1, key 'set': min_mid_term_frames (12) must be below"),
    ({"out": None}, "shot 1, key 'out': missing"),
    ({"out": "o0"}, "shot 1, key 'out': "),
])
def test_bad_shot_is_refused_naming_index_and_key(tmp_path, bad, expected):
    errors = refused(tmp_path, [GOOD, {**GOOD, "out": "o1", **bad}])
    assert any(e.startswith(expected) for e in errors), errors


def test_every_problem_of_every_shot_at_once(tmp_path):
    errors = refused(tmp_path, [{**GOOD, "direction": "up"}, GOOD | {"out": "o1"},
                                {"masks": "m", "out": "o2", "zoom": 2}, "shot3.mp4"])
    assert errors[0].startswith("shot 0, key 'direction'")
    assert any(e.startswith("shot 2, key 'zoom'") for e in errors)
    assert any(e.startswith("shot 2, key 'frames': missing") for e in errors)
    assert any(e.startswith("shot 3: expected an object") for e in errors)
    assert not any(e.startswith("shot 1") for e in errors)


@pytest.mark.parametrize("text, expected", [
    ("[", "not valid JSON (line 1"),
    ("[]", "non-empty list"),
    ('{"shot": []}', "unexpected: shot"),
    ('{"defaults": {"sizes": 3}, "shots": [{"frames": "f", "masks": "m", "out": "o"}]}', "defaults, key 'sizes'"),
])
def test_bad_file_shapes(tmp_path, text, expected):
    assert any(expected in e for e in refused(tmp_path, text))


def test_batch_command_refuses_before_running_anything(tmp_path, capsys):
    path = write(tmp_path, [{**GOOD, "out": str(tmp_path / "o0")}, {**GOOD, "out": str(tmp_path / "o1"), "memory": "xmem3"}])
    assert cli.main(["batch", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "shot 1, key 'memory': invalid choice: 'xmem3'" in err and "nothing was run" in err
    assert not (tmp_path / "o0").exists()


def test_shot_is_exactly_the_single_shot_command_line(tmp_path):
    shot = {"frames": "clips/a", "masks": "/abs/keys", "out": "out/a", "weights": "XMem-s012.pth",
            "models-dir": "models", "direction": "forward", "set": {"mem_every": 3, "enable_long_term": False},
            "tta_scales": [1.0, 0.75], "tta_flip": True, "soft": False, "size": -1, "start": 4, "end": None}
    (parsed,) = spec.load_shots(write(tmp_path, {"defaults": {"precision": "bf16", "size": 240}, "shots": [shot]}))
    typed = cli.build_parser().parse_args([
        "--frames", str(tmp_path / "clips/a"), "--masks", "/abs/keys", "--out", str(tmp_path / "out/a"),
        "--weights", "XMem-s012.pth", "--models-dir", str(tmp_path / "models"), "--direction", "forward",
        "--set", "mem_every=3", "--set", "enable_long_term=false", "--tta-scales", "1.0", "0.75",
        "--tta-flip", "--size", "-1", "--start", "4", "--precision", "bf16"])
    assert parsed.args == typed  # what the worker runs


def test_a_weights_file_next_to_the_shot_list_is_a_path(tmp_path):
    (tmp_path / "mine.pth").write_bytes(b"x")
    (parsed,) = spec.load_shots(write(tmp_path, [{**GOOD, "weights": "mine.pth"}]))
    assert parsed.args.weights == str(tmp_path / "mine.pth")


def test_long_shot_options_flow_in_and_interrupted_shots_resume(tmp_path):
    """The single-shot command's --resume and --cache-dir reach the batch: an interrupted shot is
    rerun with --resume, and neither option (nor --checkpoint-every) is part of the job's settings."""
    shots = spec.load_shots(write(tmp_path, [
        {**GOOD, "out": "started", "cache_dir": "cache"}, {**GOOD, "out": "fresh"}]))
    assert shots[0].args.cache_dir == str(tmp_path / "cache")
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "00000.png").write_bytes(b"")  # a frame streamed before the interrupt
    jobs = plan(shots, [])
    assert jobs[0].args.resume and not jobs[1].args.resume and not shots[0].args.resume
    settings = marker.settings(argparse.Namespace(**(vars(shots[0].args) | {"resume": True})))
    assert not {"resume", "cache_dir", "checkpoint_every"} & set(settings)  # how it runs, not the job


def test_ray_missing_gives_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    path = write(tmp_path, [{**GOOD, "out": str(tmp_path / "o0")}])
    assert cli.main(["batch", str(path), "--ray", "auto", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pip install ray" in err and "Traceback" not in err
    assert not (tmp_path / "o0").exists()


def test_pack_and_single_shot_cli_never_import_ray():
    import subprocess
    code = ("import sys, memvos_core.command.cli, memvos_core.batch.command, memvos_core.batch.local_pool; "
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=str(spec.Path(__file__).parents[1])).returncode == 0
