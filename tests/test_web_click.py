"""The keyframe editor's click tool (web/keyframes/click_tool.js) in headless Chromium with real
mouse events, against the pack's /memvos/click route (nodes/click_masks.py) on the SAM 2.1 parity
clip and generated weights: the masks shown are the image path's for the prompts the tool sent.
The shot propagates with XMem: clicks work whichever family propagates.
"""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from memvos_core.families.sam2.checkpoint import build_sam2
from memvos_core.families.sam2.image import embed_frame, predict
from pack_loader import pack_for_tests
from sam2_fixture import CLIP, generated_state
from web_stub_server import StubServer
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
EDITOR = "stub.keyframes.memvosKeyframes.editor"
H, W = 109, 187


@pytest.fixture(scope="module")
def shot(comfy):
    save_file({k: v.contiguous() for k, v in generated_state().items()},
              os.path.join(comfy.dirs["models"], "memvos", "sam2.1_hiera_tiny.safetensors"))
    rgb = np.array(Image.open(os.path.join(CLIP, "frames", "00000.png")).convert("RGB"))
    frames = torch.from_numpy(rgb)[None].float() / 255.0
    (model,) = outputs_of(NODES["MemVOSLoadModel"], NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "auto"))
    (session,) = outputs_of(NODES["MemVOSNewSession"], NODES["MemVOSNewSession"]().create(model, internal_size=32))
    net = build_sam2(generated_state(), "generated", 1024)
    # the frames and the node's output stay held, as ComfyUI's cache holds them (the routes hold them weakly)
    return {"returned": NODES["MemVOSKeyframes"]().build(session, frames, ""), "frames": frames, "net": net,
            "embedding": embed_frame(net, rgb)}


@pytest.fixture(scope="module")
def page(browser, comfy, shot):
    routes = {**PACK.nodes.routes.ROUTES, **PACK.nodes.click_masks.ROUTES}
    with StubServer(dirs={"temp": comfy.dirs["temp"], "input": comfy.dirs["input"]}, routes=routes) as server:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.goto(server.url)
        page.wait_for_function("window.stubReady || window.stubError")
        page.evaluate("(ui) => stub.app.deliverExecuted(stub.keyframes.id, ui)", shot["returned"]["ui"])
        page.locator(".stub-node .memvos-kf-open").click()
        yield page
        page.close()
        assert errors == []


def settle(page):
    page.evaluate(f"async () => {{ await {EDITOR}.settled(); await {EDITOR}.clickTool.settled; "
                  "await new Promise(requestAnimationFrame); }")


def at(page, x, y):
    return page.evaluate(f"([x, y]) => {EDITOR}.sourceToClient(x, y)", [x, y])


def labels(page):
    data = page.evaluate(f"() => Array.from({EDITOR}.entries.get({EDITOR}.state.frame).labels.data)")
    return np.array(data, dtype=np.uint8).reshape(H, W)


def sent(page):
    """The prompt the tool last sent: (points [[x, y]], labels, box)."""
    prompt = page.evaluate(f"() => {{ const p = {EDITOR}.clickTool.prompt(); "
                           "return p && {points: p.points, box: p.box, chosen: p.chosen}; }")
    points = [p[:2] for p in prompt["points"]] or None
    return points, [int(p[2]) for p in prompt["points"]] or None, prompt["box"], prompt["chosen"]


def click(page, x, y, button="left", modifiers=()):
    for key in modifiers:
        page.keyboard.down(key)
    page.mouse.click(*at(page, x, y), button=button)
    for key in modifiers:
        page.keyboard.up(key)
    settle(page)


def expected(shot, points, labs, box, chosen=None):
    multimask = points is not None and len(points) == 1 and box is None
    logits, ious, _ = predict(shot["net"], shot["embedding"], points, labs, box, multimask=multimask)
    return (logits[int(torch.argmax(ious)) if chosen is None else chosen] > 0).numpy()


def test_click_tool_adds_subtracts_boxes_and_accepts_with_real_mouse_events(page, shot):
    settle(page)
    page.evaluate(f"{EDITOR}.act(['tool', 'click'])")
    page.evaluate(f"async () => {{ await {EDITOR}.clickTool.ready; }}")
    segmenter = next(iter(PACK.memvos_core.ops.click._LOADED.values()))
    assert segmenter.embedded == 1, "choosing the tool has the server embed the frame before the first click"
    click(page, 40, 46)
    assert segmenter.embedded == 1, "the first click found the frame embedded"
    points, labs, box, chosen = sent(page)
    assert labs == [1] and box is None
    first = expected(shot, points, labs, box)
    status = page.locator(".memvos-editor").text_content()
    assert np.array_equal(labels(page) == 1, first) and first.any(), status
    assert "candidate" in page.locator(".memvos-editor").text_content()  # a lone click is ambiguous: choices
    page.keyboard.press("Tab")
    settle(page)
    assert np.array_equal(labels(page) == 1, expected(shot, points, labs, box, (chosen + 1) % 3))

    click(page, 40, 26, button="right")  # subtracts
    points, labs, box, _ = sent(page)
    assert labs == [1, 0]
    assert np.array_equal(labels(page) == 1, expected(shot, points, labs, box))
    click(page, 150, 64, modifiers=("Alt",))  # Alt+click subtracts too
    points, labs, box, _ = sent(page)
    assert labs == [1, 0, 0]
    shown = labels(page)
    assert np.array_equal(shown == 1, expected(shot, points, labs, box))

    page.keyboard.press("Enter")
    settle(page)
    assert page.evaluate(f"[...{EDITOR}.entries.get(0).objects]") == [1]
    assert np.array_equal(labels(page), shown)
    page.keyboard.press("Control+z")
    settle(page)
    assert not labels(page).any(), "one undo takes the accepted mask back"
    page.keyboard.press("Control+Shift+z")
    settle(page)

    page.keyboard.press("n")  # object 2, a box drawn with a drag
    page.mouse.move(*at(page, 128, 44))
    page.mouse.down()
    page.mouse.move(*at(page, 172, 88), steps=5)
    page.mouse.up()
    settle(page)
    points, labs, box, _ = sent(page)
    assert points is None and box is not None and abs(box[0] - 128) < 1 and abs(box[3] - 88) < 1
    after = labels(page)
    two = expected(shot, None, None, box)
    assert np.array_equal(after == 2, two) and np.array_equal((after == 1), (shown == 1) & ~two)
    page.keyboard.press("Escape")  # drops the preview, keeps the window open
    settle(page)
    assert np.array_equal(labels(page), shown) and page.evaluate(f"{EDITOR}.state.open")
