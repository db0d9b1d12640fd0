"""Files written by the main branch before the memory modes were renamed (xmem++ -> keyframes,
xmem -> evaluation; tests/fixtures/legacy_main) keep loading: sessions, a checkpoint of a
cancelled run, a shot list and a workflow's New Session widgets."""
import importlib
import json
from pathlib import Path

import pytest

from memvos_core.batch.spec import check_shots
from memvos_core.command.cli import parse_config
from memvos_core.config import MEMORY_MODES, MemoryConfig
from memvos_core.runtime.model import load_model

from memvos_core.session import Session
from memvos_core.session.storage import read_session
from pack_loader import pack_for_tests
from session_helpers import moving_discs

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy_main"
PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def model(synthetic_weights):
    return load_model(synthetic_weights)


def test_former_mode_names_read_as_the_new_ones():
    assert MEMORY_MODES == ("evaluation", "keyframes")
    assert MemoryConfig(memory_mode="xmem++").memory_mode == "keyframes"
    assert MemoryConfig.from_dict({"memory_mode": "xmem"}).memory_mode == "evaluation"
    assert MemoryConfig().memory_mode == "keyframes"
    with pytest.raises(ValueError, match="not one of evaluation, keyframes .former names: xmem..,"):
        MemoryConfig(memory_mode="xmem+")


@pytest.mark.parametrize("tag, mode", [("plus", "keyframes"), ("plain", "evaluation")])
def test_sessions_saved_by_main_load_and_propagate(model, tag, mode):
    session = Session.load(LEGACY / f"session_xmem_{tag}.safetensors", model)
    assert session.config.memory_mode == mode and [k.frame_index for k in session.keyframes] == [0]
    frames, _ = moving_discs(num_frames=6, height=32, width=32)
    _, result = session.propagate(frames, direction="forward")
    assert len(result.frame_indices) == 6


def test_a_checkpoint_left_by_main_loads(model):
    fields, extra = read_session(LEGACY / "checkpoint_xmem_plus.safetensors", model)
    session = Session(**fields)
    assert session.config.memory_mode == "keyframes" and session.forward_state is not None
    assert extra


def test_a_shot_list_written_for_main_still_parses(tmp_path):
    data = json.loads((LEGACY / "shots_main.json").read_text())
    shots = check_shots(data, tmp_path)
    assert [parse_config(s.args).memory_mode for s in shots] == ["keyframes", "evaluation"]


def test_a_workflow_saved_by_main_fills_new_session_as_before(synthetic_weights):
    model = importlib.import_module(f"{PACK.__name__}.memvos_core.runtime.model").load_model(synthetic_weights)
    workflow = json.loads((LEGACY / "workflow_main.json").read_text())
    (values,) = [n["widgets_values"] for n in workflow["nodes"] if n["type"] == "MemVOSNewSession"]
    node = NODES["MemVOSNewSession"]
    declared = node.INPUT_TYPES()
    widgets = [(name, spec) for part in ("required", "optional") for name, spec in declared[part].items()
               if name != "model"]
    # The frontend fills widgets by position: widgets added since come after the saved ones, as
    # optional inputs, and keep their defaults.
    assert len(widgets) >= len(values)
    assert all(name in declared["optional"] for name, _ in widgets[len(values):])
    for (name, (kind, options)), value in zip(widgets, values):
        if isinstance(kind, list):
            assert value in kind, name                     # ComfyUI refuses a value not in the list
        elif kind == "INT":
            assert options["min"] <= value <= options["max"], name
    (session,) = node().create(model, **dict(zip((n for n, _ in widgets), values)))
    assert session.config.memory_mode == "keyframes" and session.internal_size == 480
