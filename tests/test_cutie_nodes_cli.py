"""Cutie from the outside: Load Model and New Session as ComfyUI calls them, Propagate on a Cutie
session, suggestions' keys, and the command line reproducing run D (Cutie small) from a file."""
import logging
import os

import pytest
import torch

import cutie_fixture as cf
from comfy_stand_ins import ComfyStandIns, link_weights, tiny_clip
from memvos_core.command.cli import main
from memvos_core.media_io.media import read_soft_png
from memvos_core.ops.candidates import compute_candidate_keys
from memvos_core.weights import KNOWN_CHECKPOINTS
from pack_loader import pack_for_tests
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def small_weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cutie") / "cutie-small-mega.pth"
    torch.save(cf.state_dict("small"), path)
    return str(path)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, small_weights_file):
    stand_ins = ComfyStandIns(tmp_path_factory.mktemp("comfyui"))
    link_weights(small_weights_file, os.path.join(stand_ins.dirs["models"], "memvos"), "cutie-small-mega.pth")
    with pytest.MonkeyPatch.context() as mp:
        stand_ins.install(mp)
        yield stand_ins


@pytest.fixture(scope="module")
def model(comfy):
    node = NODES["MemVOSLoadModel"]
    (loaded,) = outputs_of(node, node().load("cutie-small-mega.pth", "cpu", "auto"))
    return loaded


def new_session(model, **settings):
    node = NODES["MemVOSNewSession"]
    (session,) = outputs_of(node, node().create(model, **{"internal_size": 32, **settings}))
    return session


def test_known_cutie_checkpoints_come_from_the_official_release():
    for name in ("cutie-base-mega.pth", "cutie-small-mega.pth"):
        known = KNOWN_CHECKPOINTS[name]
        assert known.url == f"https://github.com/hkchengrex/Cutie/releases/download/v1.0/{name}"
        assert known.family == "cutie" and known.sha256 is None
    assert KNOWN_CHECKPOINTS["cutie-base-mega.pth"].md5 == "a6071de6136982e396851903ab4c083a"


def test_load_model_lists_and_loads_cutie(comfy, model):
    choices = NODES["MemVOSLoadModel"].INPUT_TYPES()["required"]["weights"][0]
    assert "cutie-small-mega.pth" in choices and "cutie-base-mega.pth" in choices and "XMem.pth" in choices
    assert model.family == "cutie" and model.describe()["variant"] == "small"


def test_new_session_uses_cutie_settings_and_reports_ignored_ones(model, caplog):
    optional = NODES["MemVOSNewSession"].INPUT_TYPES()["optional"]
    assert all(optional[name][1]["tooltip"].startswith("Cutie only") for name in optional if name.startswith("cutie_"))
    assert all(" only (other models ignore it)" in optional[name][1]["tooltip"] for name in optional)
    with caplog.at_level(logging.WARNING):
        session = new_session(model, cutie_stagger_updates=3, cutie_chunk_size=1, cutie_max_mem_frames=7,
                              cutie_buffer_tokens=100, deep_update_every=4)
    c = session.config
    assert (c.stagger_updates, c.chunk_size, c.max_mem_frames, c.buffer_tokens) == (3, 1, 7, 100)
    assert "ignores deep_update_every=4" in caplog.text
    with pytest.raises(ValueError, match="prunes long-term memory"):
        new_session(model, max_long_term_elements=1000)   # - 128 prototypes - 2000 buffer < 1


def test_propagate_node_runs_a_cutie_session(comfy, model):
    frames, masks = tiny_clip()
    add = NODES["MemVOSAddAnnotation"]()
    session = new_session(model)
    (session,) = outputs_of(NODES["MemVOSAddAnnotation"], add.add(session, frames, masks[1], 0, 1))
    (session,) = outputs_of(NODES["MemVOSAddAnnotation"], add.add(session, frames, masks[2][:1], 0, 2))
    out = NODES["MemVOSPropagate"]().propagate(session, frames, "both", 0, -1, 0, 12.0)
    result = outputs_of(NODES["MemVOSPropagate"], out)
    assert result[0].forward_state.engine_meta["family"] == "cutie"
    assert len(comfy.progress) > 0


def test_suggestion_keys_come_from_cutie_padded_as_cutie_pads(model):
    frames = torch.rand(3, 40, 56, 3)
    keys, shrinkage, selection = compute_candidate_keys(model.network, frames, internal_short_side=-1)
    assert keys.shape == (3, 64, 3, 4) and shrinkage.shape == (3, 1, 3, 4) and selection.shape == keys.shape


def test_cli_reproduces_run_d_from_a_cutie_file(small_weights_file, tmp_path):
    """``--weights cutie-small-mega.pth`` just works: the family comes from the file."""
    out = tmp_path / "out"
    rc = main([str(a) for a in (
        "--frames", cf.xmem_fixture.ROOT / "clip" / "frames", "--masks", cf.run_dir("D") / "annotations",
        "--out", out, "--weights", small_weights_file, "--size", -1, "--direction", "forward", "--device", "cpu",
        "--soft", "--quiet", "--memory", "xmem", "--set", "enable_long_term=false")])
    assert rc == 0
    refs = cf.reference_probs("D")
    for t in range(cf.NUM_FRAMES):
        objects = torch.stack([read_soft_png(out / "soft" / str(o) / f"{t:05d}.png") for o in (1, 2)])
        diff, flips = cf.compare(torch.cat([1 - objects.sum(0, keepdim=True), objects]), refs[t])
        assert diff <= 1e-3 and flips == 0, (t, diff, flips)
