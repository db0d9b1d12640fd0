"""MatAnyone from the outside: Load Model lists the official files with their licence, and
Masks To Keyframes turns another run's masks (here Cutie small's) into a MatAnyone session's
keyframes, which Propagate turns into soft mattes."""
import os

import pytest
import torch

import cutie_fixture as cf
from comfy_stand_ins import ComfyStandIns, link_weights, tiny_clip
from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict
from memvos_core.session.from_masks import parse_frame_list
from pack_loader import pack_for_tests
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.save(cf.state_dict("small"), folder / "cutie-small-mega.pth")
    torch.save(synthetic_matanyone_state_dict(), folder / "matanyone2.pth")
    stand_ins = ComfyStandIns(tmp_path_factory.mktemp("comfyui"))
    for name in ("cutie-small-mega.pth", "matanyone2.pth"):
        link_weights(str(folder / name), os.path.join(stand_ins.dirs["models"], "memvos"), name)
    with pytest.MonkeyPatch.context() as mp:
        stand_ins.install(mp)
        yield stand_ins


def load(name):
    node = NODES["MemVOSLoadModel"]
    (model,) = outputs_of(node, node().load(name, "cpu", "auto"))
    return model


def new_session(model):
    node = NODES["MemVOSNewSession"]
    (session,) = outputs_of(node, node().create(model, internal_size=-1, mem_every=2))
    return session


def test_load_model_offers_matanyone_and_states_its_licence(comfy):
    node = NODES["MemVOSLoadModel"]
    choices = node.INPUT_TYPES()["required"]["weights"][0]
    assert "matanyone.pth" in choices and "matanyone2.pth" in choices
    assert "S-Lab License 1.0" in node.DESCRIPTION and "NON-COMMERCIAL" in node.DESCRIPTION
    assert load("matanyone2.pth").family == "matanyone"


def test_masks_of_a_tracking_run_become_keyframes_of_a_matting_session(comfy):
    frames, masks = tiny_clip(num_frames=4)
    add = NODES["MemVOSAddAnnotation"]()
    tracking = new_session(load("cutie-small-mega.pth"))
    (tracking,) = outputs_of(NODES["MemVOSAddAnnotation"], add.add(tracking, frames, masks[1], 0, 1))
    (tracking,) = outputs_of(NODES["MemVOSAddAnnotation"], add.add(tracking, frames, masks[2], 0, 2))
    propagate = NODES["MemVOSPropagate"]
    _, tracked, _, _ = outputs_of(propagate, propagate().propagate(tracking, frames, "forward", 0, -1, 0, 12.0))

    convert = NODES["MemVOSMasksToKeyframes"]
    matting = new_session(load("matanyone2.pth"))
    (session,) = outputs_of(convert, convert().convert(matting, tracked, frames, "0, 2"))
    assert [k.frame_index for k in session.keyframes] == [0, 2]
    assert torch.equal(session.keyframes[1].labels, tracked.labels(2, 3)[0])
    (own,) = outputs_of(convert, convert().convert(matting, tracked, frames, ""))
    assert [k.frame_index for k in own.keyframes] == [0]          # the tracking run's keyframe
    _, mattes, _, _ = outputs_of(propagate, propagate().propagate(session, frames, "forward", 0, -1, 0, 12.0))
    soft = mattes.chunk(0, 4)
    assert soft.shape == (4, 2, *frames.shape[1:3]) and ((soft > 0.01) & (soft < 0.99)).any()
    with pytest.raises(ValueError, match="outside the masks"):
        convert().convert(matting, tracked, frames, "9")


def test_frame_lists_are_checked():
    assert parse_frame_list(" 4, 0 4", 0, 9) == [0, 4] and parse_frame_list("", 0, 9) is None
    with pytest.raises(ValueError, match="clip frame numbers"):
        parse_frame_list("a, 2", 0, 9)
