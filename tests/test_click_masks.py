"""Click to mask: the pack's /memvos/click route and the Keyframes node's prompts, against SAM 2.1's
image path (families/sam2/image.py) and the official image predictor's run E (tests/fixtures/sam2_parity).

The shot propagates with XMem here (the generated XMem.pth of the ``comfy`` fixture): clicks are
served by whatever SAM 2.1 file is in models/memvos, whichever family propagates.
"""
import base64
import io
import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from memvos_core.families.sam2.checkpoint import build_sam2
from memvos_core.families.sam2.image import embed_frame, predict
from pack_loader import pack_for_tests
from sam2_fixture import CLIP, FIXTURE, generated_state
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
click_masks = PACK.nodes.click_masks
click_core = PACK.memvos_core.ops.click
RUN_E = os.path.join(FIXTURE, "run_E")


def run_e_calls():
    config = json.load(open(os.path.join(RUN_E, "config.json")))
    return [c["args"] for c in config["calls"] if c["call"] == "predict"]


def as_prompt(args):
    points = [[*p, lab] for p, lab in zip(args.get("point_coords") or [], args.get("point_labels") or [])]
    return {"points": points, "box": args.get("box")}


@pytest.fixture(scope="module")
def frames():
    rgb = [np.array(Image.open(os.path.join(CLIP, "frames", f"{t:05d}.png")).convert("RGB")) for t in (0, 1)]
    return torch.from_numpy(np.stack(rgb)).float() / 255.0


@pytest.fixture(scope="module")
def image_path():
    """Our image path on frame 0 (the network the route will load from the same tensors)."""
    net = build_sam2(generated_state(), "generated", 1024)
    rgb = np.array(Image.open(os.path.join(CLIP, "frames", "00000.png")).convert("RGB"))
    return net, embed_frame(net, rgb)


@pytest.fixture(scope="module")
def shot(comfy, frames):
    """A Keyframes node run on an XMem session (the shot the editor opens) and its token."""
    (model,) = outputs_of(NODES["MemVOSLoadModel"], NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "auto"))
    (session,) = outputs_of(NODES["MemVOSNewSession"], NODES["MemVOSNewSession"]().create(model, internal_size=32))
    returned = NODES["MemVOSKeyframes"]().build(session, frames, "")
    return {"returned": returned, "session": session, "token": returned["ui"]["memvos_keyframes"][0]["token"]}


def click(shot, frame, prompt):
    query = {"token": shot["token"], "frame": str(frame),
             "prompt": prompt if isinstance(prompt, str) else json.dumps(prompt)}
    status, kind, body = click_masks.click_response(query)
    assert kind == "application/json"
    return status, json.loads(body)


def prepare(shot, frame):
    status, _, body = click_masks.click_response({"token": shot["token"], "frame": str(frame), "prepare": "1"})
    return status, json.loads(body)


def decoded(body):
    return torch.stack([torch.from_numpy(np.array(Image.open(io.BytesIO(base64.b64decode(m)))) > 127)
                        for m in body["masks"]])


def test_click_without_sam2_weights_says_how_to_get_them(shot):
    status, body = click(shot, 0, {"points": [[40, 46, 1]]})
    assert status == 409
    assert "sam2.1_hiera_tiny.pt" in body["error"] and "models/memvos" in body["error"]
    status, body = prepare(shot, 0)
    assert status == 409 and "models/memvos" in body["error"], "the editor learns it when it picks the tool"


@pytest.fixture()
def sam2_in_models(comfy):
    """A SAM 2.1 file in models/memvos (after the test that runs without one), written once."""
    path = os.path.join(comfy.dirs["models"], "memvos", "sam2.1_hiera_tiny.safetensors")
    if not os.path.exists(path):
        save_file({k: v.contiguous() for k, v in generated_state().items()}, path)
    return path


def test_click_route_gives_the_image_path_masks_and_embeds_a_frame_once(sam2_in_models, shot, image_path):
    net, emb = image_path
    reference = load_file(os.path.join(RUN_E, "outputs.safetensors"))
    segmenter = None
    for i, args in enumerate(run_e_calls()):
        status, body = click(shot, 0, as_prompt(args))
        assert status == 200, body
        assert body["weights"] == "sam2.1_hiera_tiny.safetensors" and (body["width"], body["height"]) == (187, 109)
        masks = decoded(body)
        lone_click = len(args.get("point_coords") or []) == 1 and args.get("box") is None
        logits, ious, _ = predict(net, emb, args.get("point_coords"), args.get("point_labels"), args.get("box"),
                                  multimask=lone_click)
        assert torch.equal(masks, logits > 0), i
        assert body["best"] == int(torch.argmax(ious))
        if lone_click == args["multimask_output"]:  # the official predictor ran with the route's choice
            ref = reference[f"predict{i}/masks_logits"].float()
            agree = (masks == (ref > 0)).float().mean()
            assert agree > 0.999, (i, agree)
            assert body["best"] == int(torch.argmax(reference[f"predict{i}/iou_predictions"]))
        segmenter = segmenter or next(iter(click_core._LOADED.values()))
    assert segmenter.embedded == 1  # four clicks, one embedding (other frames: the LRU test below)


def test_click_prepare_embeds_a_frame_ahead_of_its_first_click(sam2_in_models, shot):
    """The editor asks for a frame's embedding when the click tool meets it (the seconds of a first
    click on a CPU are spent before the artist clicks); the click then only decodes."""
    assert prepare(shot, 0)[0] == 200  # loads the route's network
    segmenter = next(iter(click_core._LOADED.values()))
    before = segmenter.embedded
    status, body = prepare(shot, 1)
    assert status == 200 and body == {"ready": True, "weights": "sam2.1_hiera_tiny.safetensors",
                                      "width": 187, "height": 109}
    assert segmenter.embedded == before + 1
    assert prepare(shot, 1)[0] == 200 and click(shot, 1, {"points": [[40, 46, 1]]})[0] == 200
    assert segmenter.embedded == before + 1, "asked again and clicked: no second embedding"
    assert prepare(shot, 9)[0] == 404


def test_click_refuses_bad_prompts_with_one_line(shot):
    for prompt, words in (("{oops", "not JSON"), ({"points": []}, "neither points nor a box"),
                          ({"points": [[40, 46, 3]]}, "use 1 (adds) or 0"),
                          ({"points": [[400, 46, 1]]}, "outside the 187x109 frame"),
                          ({"box": [1, 2, 3]}, "list of 4 numbers")):
        status, body = click(shot, 0, prompt)
        assert status == 400 and words in body["error"] and "\n" not in body["error"], (prompt, body)
    status, body = click(shot, 5, {"points": [[40, 46, 1]]})
    assert status == 404 and "outside frames 0..1" in body["error"]


def test_click_embeddings_are_an_lru_bounded_by_bytes(monkeypatch):
    from memvos_core.families.sam2.image import FrameEmbedding
    # the cache's rule, not the encoder: a stand-in embedding of 4 KiB per frame
    one = 32 * 32 * 4
    net = torch.nn.Identity()
    net.family = "sam2"
    seg = click_core.ClickSegmenter(net, cache_bytes=2 * one)
    seg.prompts = replace(seg.prompts, embed=lambda net, px: FrameEmbedding(px.clone(), (), (32, 32)))
    pixels = {k: torch.rand(32, 32) for k in "abc"}
    for key in "abab":
        assert torch.equal(seg.embedding(key, lambda key=key: pixels[key]).feat, pixels[key])
    assert seg.embedded == 2
    seg.embedding("c", lambda: pixels["c"])  # drops "a", the least recently used
    assert seg.embedded == 3 and seg.cached_bytes <= 2 * one
    seg.embedding("b", lambda: pixels["b"])
    assert seg.embedded == 3
    seg.embedding("a", lambda: pixels["a"])
    assert seg.embedded == 4


def test_click_weights_are_picked_smallest_known_first():
    assert click_core.pick_weights(["XMem.pth", "sub/sam2.1_hiera_large.pt", "sam2.1_hiera_tiny.pt"]) == \
        "sam2.1_hiera_tiny.pt"
    assert click_core.pick_weights(["XMem.pth", "my_sam2_finetune.safetensors"]) == "my_sam2_finetune.safetensors"
    assert click_core.pick_weights(["XMem.pth", "cutie-base-mega.pth"]) is None


def test_click_prompts_in_the_keyframes_node_give_the_route_masks(sam2_in_models, shot, frames, image_path):
    net, emb = image_path
    widget = json.dumps([{"frame": 0, "object": 1, "points": [[40, 46, 1]]}])
    fed = [{"frame": 0, "object": 2, "box": [128, 44, 172, 88]}]
    returned = NODES["MemVOSKeyframes"]().build(shot["session"], frames, "", prompts=widget,
                                                 prompts_input=json.dumps(fed))
    keyframe = returned["result"][0].keyframe(0)
    assert sorted(keyframe.object_ids) == [1, 2]
    logits, ious, _ = predict(net, emb, [[40, 46]], [1], multimask=True)
    one = logits[int(torch.argmax(ious))] > 0
    two = predict(net, emb, None, None, [128, 44, 172, 88], multimask=False)[0][0] > 0
    expected = torch.zeros(109, 187, dtype=torch.uint8)
    expected[one], expected[two] = 1, 2
    assert torch.equal(keyframe.labels.cpu(), expected)
    assert returned["ui"]["memvos_keyframes"][0]["keyframes"][0]["sources"] == {"1": "prompts", "2": "prompts"}


def test_click_prompts_refused_with_one_line(shot, frames):
    node = NODES["MemVOSKeyframes"]
    assert node.VALIDATE_INPUTS(prompts="[{") .startswith("prompts is not valid JSON")
    assert "object must be an object id" in node.VALIDATE_INPUTS(prompts='[{"frame": 0, "object": 0, "box": [1,1,2,2]}]')
    entry = [{"frame": 0, "object": 1, "points": [[40, 46, 1]]}]
    with pytest.raises(ValueError, match="in both the prompts widget and prompts_input"):
        node().build(shot["session"], frames, "", prompts=json.dumps(entry), prompts_input=json.dumps(entry))
    with pytest.raises(ValueError, match="frame 7 is past the shot"):
        node().build(shot["session"], frames, "", prompts=json.dumps([{**entry[0], "frame": 7}]))


def test_click_uses_the_sessions_sam2_model_when_it_propagates_with_one(frames):
    model = PACK.memvos_core.runtime.model.load_model(generated_state(), name="sam2.1_hiera_tiny.pt")
    (session,) = outputs_of(NODES["MemVOSNewSession"], NODES["MemVOSNewSession"]().create(model, internal_size=32))
    segmenter, name = click_masks.click_segmenter(session)
    assert name == "sam2.1_hiera_tiny.pt" and segmenter.network is session.model.network
    assert click_masks.click_segmenter(session)[0] is segmenter  # its embeddings are kept between clicks


def test_bench_click_runs_as_a_script_from_the_repository_root():
    """``python bench/bench_click.py`` (as the README says) found no memvos_core: only bench/ was
    on the path."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "bench/bench_click.py", "--help"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
    assert "click latency" in done.stdout.lower()
