"""The keyframe editor (web/keyframes/) in a real headless Chromium, driven with real mouse events,
against the stub frontend (tests/web_stub/) and a server playing ComfyUI (tests/web_stub_server.py)
whose /memvos/* routes are the pack's own handlers. The Keyframes and Propagate nodes run here in
Python (ComfyUI stand-ins) on the folder the browser uploads into, as ComfyUI would run them.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pack_loader import pack_for_tests
from web_stub_server import StubServer
from workflow_executor import outputs_of

ROOT = Path(__file__).resolve().parents[1]
PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
T, H, W = 12, 90, 160
EDITOR = "stub.keyframes.memvosKeyframes.editor"


def shot_frames():
    """A gradient with a light disc moving right (object-like), float IMAGE ``[T,H,W,3]``."""
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    frames = torch.stack([0.2 + 0.3 * xs / W, 0.25 + 0.2 * ys / H, 0.35 + 0.0 * xs], -1).expand(T, H, W, 3).clone()
    for t in range(T):
        disc = (xs - (40 + 5 * t)) ** 2 + (ys - 45) ** 2 < 18 ** 2
        frames[t][disc] = torch.tensor([0.9, 0.75, 0.3])
    return frames


@pytest.fixture(scope="module")
def session(comfy):
    (model,) = outputs_of(NODES["MemVOSLoadModel"], NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "auto"))
    (made,) = outputs_of(NODES["MemVOSNewSession"], NODES["MemVOSNewSession"]().create(model, internal_size=32))
    return made


class Shot:
    """The frames and every node output made from them, kept alive as ComfyUI's cache would."""

    def __init__(self, session):
        self.session, self.frames, self.held = session, shot_frames(), []

    def keyframes(self, spec=""):
        returned = NODES["MemVOSKeyframes"]().build(self.session, self.frames, spec)
        self.held.append(returned)
        return returned["result"][0], returned["ui"]

    def propagate(self, keyed):
        returned = NODES["MemVOSPropagate"]().propagate(keyed, self.frames, "forward", 0, -1, 0, 8.0)
        self.held.append(returned)
        return returned["result"], returned["ui"]


@pytest.fixture(scope="module")
def shot(session):
    return Shot(session)


@pytest.fixture(scope="module")
def server(comfy):
    with StubServer(dirs={"temp": comfy.dirs["temp"], "input": comfy.dirs["input"]},
                    routes=PACK.nodes.routes.ROUTES) as server:
        yield server


class Page:
    """The stub page with the Keyframes node, and helpers that drive its editor like an artist."""

    def __init__(self, browser, server, query=""):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.server = server
        self.goto(query)

    def goto(self, query=""):
        self.page.goto(self.server.url + query)
        self.page.wait_for_function("window.stubReady || window.stubError")
        assert self.js("window.stubError || null") is None

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def deliver(self, node, ui):
        self.js("([node, ui]) => stub.app.deliverExecuted(stub[node].id, ui)", [node, ui])

    def settle(self):
        self.js(f"async () => {{ await {EDITOR}.settled(); await new Promise(requestAnimationFrame); }}")

    def open(self, frame=None):
        if frame is None:
            self.panel.locator(".memvos-kf-open").click()
        else:
            self.panel.locator(f'.memvos-kf-chip[data-frame="{frame}"]').click()
        self.settle()
        assert self.state()["open"] is True

    @property
    def panel(self):
        return self.page.locator(".stub-node .memvos-kf-panel")

    @property
    def window(self):
        return self.page.locator(".memvos-editor")

    def state(self):
        return self.js(f"JSON.parse(JSON.stringify({EDITOR}.state))")

    def spec(self):
        text = self.js("stub.keyframes.widgets.find(w => w.name === 'keyframes').value")
        return json.loads(text) if text else None

    def point(self, x, y):
        return self.js(f"([x, y]) => {EDITOR}.sourceToClient(x, y)", [x, y])

    def drag(self, points, button="left", steps=6):
        mouse = self.page.mouse
        mouse.move(*self.point(*points[0]))
        mouse.down(button=button)
        for p in points[1:]:
            mouse.move(*self.point(*p), steps=steps)
        mouse.up(button=button)
        self.settle()

    def click(self, x, y, button="left"):
        self.drag([(x, y)], button=button)

    def key(self, key):
        self.page.keyboard.press(key)
        self.settle()

    def labels(self, frame=None):
        data = self.js(f"(f) => Array.from({EDITOR}.entries.get(f ?? {EDITOR}.state.frame).labels.data)", frame)
        return np.array(data, dtype=np.uint8).reshape(H, W)

    def objects(self, frame=None):
        return sorted(self.js(f"(f) => [...{EDITOR}.entries.get(f ?? {EDITOR}.state.frame).objects]", frame))

    def close(self):
        errors = list(self.errors)
        self.page.close()
        assert errors == [], f"console errors in the page: {errors}"


@pytest.fixture
def page(browser, server):
    page = Page(browser, server)
    yield page
    page.close()


def loaded(page, shot, spec=""):
    """The node ran (Load frames, or the workflow): its UI output reaches the page."""
    _, ui = shot.keyframes(spec)
    page.deliver("keyframes", ui)
    return ui


def disc_area(r):
    return np.pi * r * r


# ------------------------------------------------------------------ painting

def test_brush_eraser_undo_redo_zoom_and_objects_with_real_mouse_events(page, shot):
    assert "Shot not loaded" in page.panel.text_content()
    page.open()
    assert "not loaded yet" in page.window.locator(".memvos-ed-message").text_content()
    loaded(page, shot)
    page.settle()
    assert not page.window.locator(".memvos-ed-message").is_visible(), "the frame arrived"
    assert page.state()["frame"] == 0

    page.js(f"{EDITOR}.act(['tool', 'brush'])")
    page.page.locator(".memvos-ed-size").fill("16")
    page.click(40.5, 30.5)
    dot = page.labels()
    assert abs((dot == 1).sum() - disc_area(8)) < 0.1 * disc_area(8), (dot == 1).sum()
    ys, xs = np.nonzero(dot == 1)
    assert abs(xs.mean() - 40) < 1 and abs(ys.mean() - 30) < 1, "painted where the pointer was"
    assert page.objects() == [1]

    page.page.locator(".memvos-ed-size").fill("10")
    page.drag([(20, 60), (100, 60)])
    stroke = page.labels()
    added = (stroke == 1).sum() - (dot == 1).sum()
    assert abs(added - (80 * 10 + disc_area(5))) < 0.1 * 800, added

    page.drag([(50, 55), (70, 65)], button="right")  # right-drag erases the selected object
    erased = page.labels()
    assert (erased == 1).sum() < (stroke == 1).sum() and (erased[58:63, 55:65] == 0).all()
    page.key("Control+z")
    assert np.array_equal(page.labels(), stroke), "undo restores the stroke exactly"
    page.key("Control+Shift+z")
    assert np.array_equal(page.labels(), erased), "redo erases again"

    # Object 2: a new object, painted across object 1 (it takes those pixels); its eraser spares object 1.
    page.key("n")
    assert page.state()["activeId"] == 2
    page.drag([(40, 20), (40, 75)])
    both = page.labels()
    assert both[60, 40] == 2 and both[30, 40] == 2 and (both == 1).sum() > 0
    page.drag([(20, 60), (100, 60)], button="right")
    assert (page.labels() == 1).sum() == (both == 1).sum(), "erasing object 2 leaves object 1 alone"
    assert page.objects() == [1, 2]
    page.key("1")
    assert page.state()["activeId"] == 1

    # Zoom in around a point with the wheel, pan with space+drag: painting still lands on the pixel.
    x, y = page.point(120, 30)
    page.page.mouse.move(x, y)
    page.page.mouse.wheel(0, -600)
    page.settle()
    page.page.keyboard.down(" ")
    page.drag([(120, 30), (110, 35)])
    page.page.keyboard.up(" ")
    before = page.labels()
    page.page.locator(".memvos-ed-size").fill("2")
    page.click(130.5, 10.5)
    changed = np.argwhere(page.labels() != before)
    assert len(changed) and (np.abs(changed - [10, 130]) <= 1).all(), changed


def test_fill_a_closed_outline_and_the_lasso(page, shot):
    loaded(page, shot)
    page.open()
    page.page.locator(".memvos-ed-size").fill("4")
    ring = [(60 + 20 * np.cos(a), 45 + 20 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 40)]
    page.drag(ring, steps=2)
    outline = (page.labels() == 1).sum()
    page.key("f")
    page.click(60, 45)
    filled = (page.labels() == 1).sum()
    assert abs(filled - disc_area(22)) < 0.12 * disc_area(22) and filled > 2 * outline
    page.key("Control+z")
    assert (page.labels() == 1).sum() == outline

    page.key("l")
    page.key("n")
    page.drag([(100, 10), (150, 10), (150, 40), (100, 40), (100, 11)], steps=8)
    lasso = page.labels() == 2
    assert abs(lasso.sum() - 50 * 30) < 0.08 * 1500 and lasso[25, 125] and not lasso[5, 125]
    page.drag([(110, 20), (140, 20), (140, 30), (110, 30), (110, 21)], button="right", steps=8)
    assert (page.labels() == 2).sum() == lasso.sum() - 30 * 10, "a right-button lasso erases inside"


# ------------------------------------------------------------------ saving, reloading, running

def test_keyframes_are_saved_found_again_after_a_reload_and_are_the_session(page, shot, comfy, server):
    loaded(page, shot)
    page.open()
    page.page.locator(".memvos-ed-size").fill("20")
    page.drag([(30, 45), (50, 45)])
    first = page.labels()
    page.key("ArrowRight")
    page.key("Shift+ArrowRight")
    assert page.state()["frame"] == 11
    page.key("n")
    page.drag([(100, 30), (120, 60)])
    page.key("Delete")  # object 2 cleared here: annotated as not visible on frame 11
    page.key("Control+z")
    last = page.labels()
    page.js(f"{EDITOR}.goTo(5)")
    page.settle()
    page.key("1")
    page.click(70, 45)
    middle = page.labels()
    uploads_before = len(server.uploads)
    page.key("Control+s")
    page.js(f"{EDITOR}.save()")
    spec = page.spec()
    assert [(k["frame"], k["objects"]) for k in spec["keyframes"]] == [(0, [1]), (5, [1]), (11, [2])]
    assert len(server.uploads) - uploads_before == 3
    for k, want in zip(spec["keyframes"], (first, middle, last)):
        assert k["file"].startswith("memvos/keyframe_f") and k["file"].endswith(".png")
        with Image.open(os.path.join(comfy.dirs["input"], k["file"])) as img:
            assert img.mode == "P" and np.array_equal(np.asarray(img), want), "the file holds exactly what was painted"
    assert "\"pixels\"" not in json.dumps(spec) and len(json.dumps(spec)) < 600, "the workflow keeps names, not pixels"

    page.key("Escape")
    assert page.state()["open"] is False
    page.js("stub.app.saveWorkflow()")
    page.goto()  # reload the page: the workflow comes back, the run's outputs do not
    assert page.js("stub.restored") is True and page.spec() == spec
    chips = page.panel.locator(".memvos-kf-chip")
    assert [c.text_content() for c in chips.all()] == ["0", "5", "11"]
    loaded(page, shot, json.dumps(spec))  # Load frames after the reload
    page.open(11)
    assert np.array_equal(page.labels(11), last) and page.objects(11) == [2]

    # The workflow runs from those files: the session holds exactly the painted masks.
    keyed, _ = shot.keyframes(json.dumps(spec))
    counts = {k.frame_index: {int(i): int((k.labels == i).sum()) for i in k.object_ids} for k in keyed.keyframes}
    assert counts == {0: {1: int((first == 1).sum())}, 5: {1: int((middle == 1).sum())}, 11: {2: int((last == 2).sum())}}
    for k, want in zip(keyed.keyframes, (first, middle, last)):
        assert np.array_equal(k.labels.numpy(), want)
    assert abs(counts[0][1] - (20 * 20 + disc_area(10))) < 0.1 * 714
    (_, masks, union, _), _ = shot.propagate(keyed)
    assert torch.equal(union[5] > 0.5, torch.from_numpy(middle > 0)), "Propagate returns the keyframe exactly"


def test_fix_this_frame_starts_from_the_propagated_mask_and_touches_no_other_keyframe(page, shot, comfy):
    base = np.zeros((H, W), np.uint8)
    base[30:60, 30:60] = 1
    name = "memvos/keyframe_fix_base.png"
    os.makedirs(os.path.join(comfy.dirs["input"], "memvos"), exist_ok=True)
    Image.fromarray(base).save(os.path.join(comfy.dirs["input"], name))  # greyscale ids are read too
    spec = json.dumps({"format": "memvos-keyframes", "version": 1, "objects": [{"id": 1, "name": "ball"}],
                       "keyframes": [{"frame": 0, "file": name, "objects": [1]}]})
    page.js("(text) => { const w = stub.keyframes.widgets.find(w => w.name === 'keyframes'); w.value = text; stub.keyframes.onConfigure({}); }", spec)
    keyed, kf_ui = shot.keyframes(spec)
    page.deliver("keyframes", kf_ui)
    (_, masks, _, _), prop_ui = shot.propagate(keyed)
    page.deliver("propagate", prop_ui)
    page.js("async () => { await stub.propagate.memvosPlayer.loading; await stub.propagate.memvosPlayer.settled(); }")
    player = page.page.locator(f'.stub-node[data-node-id="{page.js("stub.propagate.id")}"] .memvos-player')
    player.locator("input.memvos-scrub").fill("7")
    player.locator("button.memvos-pick").click()
    page.settle()
    assert page.state()["open"] and page.state()["frame"] == 7
    propagated = masks.labels(7, 8)[0].numpy()
    assert propagated.any() and np.array_equal(page.labels(7), propagated), "prefilled with the propagated mask"
    assert page.objects(7) == sorted(set(np.unique(propagated)) - {0})
    page.key("Escape")  # looked, changed nothing: no keyframe is added
    assert json.loads(page.js("stub.keyframes.widgets.find(w => w.name === 'keyframes').value")) == json.loads(spec)
    player.locator("button.memvos-pick").click()
    page.settle()
    assert np.array_equal(page.labels(7), propagated)
    page.key("n")  # a new object: whatever the propagation drew there, this changes the frame
    page.page.locator(".memvos-ed-size").fill("12")
    page.drag([(90, 45), (110, 45)])
    fixed = page.labels(7)
    assert (fixed == 2).sum() > 200 and np.array_equal(fixed[fixed != 2], propagated[fixed != 2])
    page.key("Escape")  # saves and closes
    after = json.loads(page.js("stub.keyframes.widgets.find(w => w.name === 'keyframes').value"))
    assert [k["frame"] for k in after["keyframes"]] == [0, 7]
    assert after["keyframes"][0] == json.loads(spec)["keyframes"][0], "keyframe 0 is untouched"
    rerun, _ = shot.keyframes(json.dumps(after))
    assert np.array_equal(rerun.keyframe(0).labels.numpy(), base) and np.array_equal(rerun.keyframe(7).labels.numpy(), fixed)


# ------------------------------------------------------------------ the page around the editor

def test_keys_stay_in_the_editor_while_it_is_open(page, shot):
    loaded(page, shot)
    page.js("window.seen = []; window.addEventListener('keydown', (e) => seen.push(e.key))")
    assert page.js("stub.app.constructor.maskeditor_is_opended()") is False
    page.open()
    assert page.js("stub.app.constructor.maskeditor_is_opended()") is True, "ComfyUI's own shortcuts stand down"
    page.key("Control+z")
    page.key("b")
    assert page.js("window.seen") == [], "no key reaches the page while the editor is open"
    page.key("Escape")
    assert page.js("stub.app.constructor.maskeditor_is_opended()") is False
    page.key("b")
    assert page.js("window.seen") == ["b"]


def test_load_frames_queues_only_this_node_and_gone_frames_ask_for_a_run(page, shot):
    page.panel.locator(".memvos-kf-load").click()
    assert page.js("stub.app.queued") == [{"number": 0, "batchCount": 1, "queueNodeIds": [str(page.js("stub.keyframes.id"))]}]
    page.deliver("keyframes", {"memvos_keyframes": [{"token": "f" * 24, "num_frames": T, "width": W, "height": H,
                                                     "keyframes": []}]})
    page.open()
    message = page.window.locator(".memvos-ed-message")
    assert message.is_visible() and "run the workflow again" in message.text_content()
    page.errors[:] = [e for e in page.errors if "404" not in e]  # the browser logs the refused request itself
    page.window.locator(".memvos-ed-load").click()
    assert len(page.js("stub.app.queued")) == 2


def test_load_frames_from_the_editor_says_when_the_shot_arrived(page, shot):
    """Seen in ComfyUI 0.8.0: after "Load the shot's frames" in the editor the frames came, but
    the status line kept saying the node was running."""
    page.js("(text) => { const w = stub.keyframes.widgets.find(w => w.name === 'keyframes'); w.value = text; "
            "stub.keyframes.onConfigure({}); }", json.dumps({
                "format": "memvos-keyframes", "version": 1, "objects": [{"id": 1, "name": "bunny"}, {"id": 2, "name": "tree"}],
                "keyframes": [{"frame": 3, "file": "memvos/elsewhere.png", "objects": [1, 2]}]}))
    page.open()
    side = page.window.locator(".memvos-ed-side")
    assert [v for v in side.locator(".memvos-ed-objects input[type=text]").evaluate_all("(l) => l.map((i) => i.value)")] \
        == ["bunny", "tree"], "the list's objects are shown before the frames load"
    assert side.locator(".memvos-ed-keyframe").all_text_contents() == ["frame 3 \u00B7 objects 1, 2"]
    timeline = page.window.locator(".memvos-timeline")
    assert not timeline.locator(".memvos-playhead").is_visible(), "no frames: no playhead (it sat mid-bar)"
    page.window.locator(".memvos-ed-load").click()
    status = page.window.locator(".memvos-ed-status")
    assert status.text_content().startswith("Running this node")
    loaded(page, shot)
    page.settle()
    assert status.text_content() == f"Shot loaded: {T} frames, {W}\u00d7{H}."
    assert timeline.locator(".memvos-playhead").is_visible()
    page.errors[:] = [e for e in page.errors if "404" not in e]  # elsewhere.png is not in input/: refused


def test_the_node_grows_to_show_a_run_error_and_the_drop_button(page):
    """Seen in ComfyUI 0.8.0's classic canvas: after a template's keyframe was refused, the
    message and "Drop keyframes that do not fit" lay below the node's edge (the DOM widget gets
    the height the node leaves it)."""
    before = page.js("stub.keyframes.size[1]")
    # As the classic canvas does: the widget's element is given a height, and what exceeds it is cut.
    page.js("() => Object.assign(stub.keyframes.memvosKeyframes.panel.element.style, {height: '100px', overflow: 'hidden'})")
    node_id = page.js("stub.keyframes.id")
    message = "keyframes: 1 keyframe painted on other footage (" + "a long explanation " * 12 + ")"
    page.js("([id, text]) => stub.app.deliverEvent('memvos.keyframes_misfit', {node: String(id), frames: [0], message: text})",
            [node_id, message])
    page.js("([id, text]) => stub.app.deliverEvent('execution_error', {node_id: String(id), exception_message: text})",
            [node_id, message])
    assert page.panel.locator(".memvos-kf-drop").is_visible()
    needed = page.js("stub.keyframes.memvosKeyframes.panel.contentHeight()")
    page.js("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => requestAnimationFrame(r))))")
    overflow = page.js("(() => { const e = stub.keyframes.memvosKeyframes.panel.element; return e.scrollHeight - e.clientHeight; })()")
    after = page.js("stub.keyframes.size[1]")
    assert needed > 110 and after > before and after >= needed
    assert after >= page.js("stub.keyframes.computeSize()[1]") + overflow, "what overflows the given height is added"


def test_a_broken_keyframe_list_is_reported_not_fatal(page, shot):
    page.js("() => { const w = stub.keyframes.widgets.find(w => w.name === 'keyframes'); w.value = '{oops'; stub.keyframes.onConfigure({}); }")
    assert "not valid JSON" in page.panel.locator(".memvos-kf-error").text_content()
    loaded(page, shot)
    page.open()
    assert "not valid JSON" in page.window.locator(".memvos-ed-error").text_content()
    page.click(40, 40)
    page.key("Escape")
    assert [k["frame"] for k in page.spec()["keyframes"]] == [0], "saving replaced the broken list"


@pytest.mark.parametrize("renderer", ["classic", "vue"])
def test_panel_and_editor_in_both_renderers(browser, server, shot, renderer, artifacts_dir):
    page = Page(browser, server, query=f"?renderer={renderer}")
    try:
        loaded(page, shot)
        box = page.panel.bounding_box()
        assert box["width"] > 300 and box["height"] > 60 and page.panel.locator(".memvos-kf-open").is_visible()
        assert "12 frames, 160\u00d790" in page.panel.text_content()
        page.open()
        canvas = page.window.locator("canvas.memvos-ed-canvas").bounding_box()
        assert canvas["width"] > 900 and canvas["height"] > 600
        page.page.locator(".memvos-ed-size").fill("14")
        page.drag([(30, 50), (90, 40)])
        page.key("n")
        page.drag([(100, 20), (130, 70)])
        assert page.objects() == [1, 2]
        if renderer == "classic":
            # git-ignored; copy it to docs/keyframe_editor.png by hand to update the README's picture
            shot_path = artifacts_dir / "keyframe_editor.png"
            page.page.screenshot(path=str(shot_path))
            with Image.open(shot_path) as image:
                assert image.width >= 900 and image.height >= 600
    finally:
        page.close()


# ------------------------------------------------------------------ a template on other footage

@pytest.mark.parametrize("renderer", ["classic", "vue"])
def test_template_keyframe_of_other_footage_is_reported_dropped_then_paint_and_run(browser, server, shot, comfy,
                                                                                   renderer, artifacts_dir):
    """A template's bundled keyframe (painted at 186x108) on this 160x90 shot: the node refuses it
    and tells the page which; the node and its editor (without frames) show why and drop it in
    one click; then the artist paints on the shot and the node runs."""
    folder = os.path.join(comfy.dirs["input"], "memvos")
    os.makedirs(folder, exist_ok=True)
    labels = np.zeros((108, 186), np.uint8)
    labels[30:60, 40:90] = 1
    Image.fromarray(labels, "L").save(os.path.join(folder, "memvos_example_keyframe_f00.png"))
    template = json.dumps({"format": "memvos-keyframes", "version": 1, "objects": [{"id": 1, "name": "bunny"}],
                           "keyframes": [{"frame": 0, "file": "memvos/memvos_example_keyframe_f00.png", "objects": [1]}]})
    page = Page(browser, server, query=f"?renderer={renderer}&fresh=1")
    try:
        page.js("(text) => { const w = stub.keyframes.widgets.find(w => w.name === 'keyframes'); w.value = text; "
                "stub.keyframes.onConfigure({}); }", template)
        node_id = str(page.js("stub.keyframes.id"))
        sent = []
        instance = comfy.modules["server"].PromptServer.instance
        instance.send_sync = lambda event, data, sid=None: sent.append((event, data))
        try:
            with pytest.raises(ValueError, match="painted on other footage") as failed:
                NODES["MemVOSKeyframes"]().build(shot.session, shot.frames, template, unique_id=node_id)
        finally:
            del instance.send_sync
        (event, detail), = sent
        assert detail["node"] == node_id and detail["frames"] == [0]
        assert "186\u00d7108, the frames 160\u00d790" in detail["message"], "sizes as width\u00d7height"
        # What ComfyUI sends to the page: our event, then the node's error.
        page.js("([e, d]) => stub.app.deliverEvent(e, d)", [event, detail])
        page.js("([id, text]) => stub.app.deliverEvent('execution_error', {node_id: id, exception_message: text})",
                [node_id, str(failed.value)])
        drop = page.panel.locator(".memvos-kf-drop")
        assert drop.is_visible() and "painted on other footage" in page.panel.locator(".memvos-kf-error").text_content()
        page.panel.screenshot(path=str(artifacts_dir / f"keyframes_template_misfit_node_{renderer}.png"))

        page.open()  # no frames: the editor says why and offers the same way out
        message = page.window.locator(".memvos-ed-message")
        assert "painted on other footage" in message.text_content()
        assert "painted on other footage" in page.window.locator(".memvos-ed-error").text_content()
        assert "Running this node" not in page.window.locator(".memvos-ed-status").text_content()
        page.page.screenshot(path=str(artifacts_dir / f"keyframes_template_misfit_{renderer}.png"))
        page.window.locator(".memvos-ed-drop").click()
        page.settle()
        assert page.spec()["keyframes"] == [] and [o["name"] for o in page.spec()["objects"]] == ["bunny"]
        assert not page.window.locator(".memvos-ed-drop").is_visible()
        assert not drop.is_visible() and not page.panel.locator(".memvos-kf-error").is_visible()

        loaded(page, shot, json.dumps(page.spec()))  # Load frames: the node runs on the shot
        page.settle()
        page.page.locator(".memvos-ed-size").fill("16")
        page.drag([(30, 45), (60, 45)])
        page.key("Escape")
        spec = page.spec()
        assert [(k["frame"], k["objects"]) for k in spec["keyframes"]] == [(0, [1])]
        keyed, _ = shot.keyframes(json.dumps(spec))  # the run
        assert [k.frame_index for k in keyed.keyframes] == [0] and keyed.frame_size == (H, W)
        _, prop_ui = shot.propagate(keyed)
        page.deliver("propagate", prop_ui)
        page.js("async () => { await stub.propagate.memvosPlayer.loading; await stub.propagate.memvosPlayer.settled(); }")
        player = page.page.locator(".stub-node .memvos-object")
        assert player.first.text_content().strip() == "bunny", "the player names the object as the editor does"
    finally:
        page.close()
