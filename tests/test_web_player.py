"""The preview player (web/) in a real headless Chromium, against a stub ComfyUI frontend.

A small HTTP server on 127.0.0.1 (tests/web_stub_server.py) serves the stub from tests/web_stub/
(`scripts/app.js`, `scripts/api.js`, a harness that builds a graph), web/ under
/extensions/ComfyUI-MemVOS/, and /api/view from a temp folder holding a preview that
nodes/preview.py wrote for a synthetic clip. The browser comes from the `browser` fixture
(tests/conftest.py).
"""
import importlib.util
import json
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from web_stub_server import StubServer

ROOT = Path(__file__).resolve().parents[1]
FRAME_OFFSET = 100
OBJECT_IDS = [1, 3]  # id 3 sits in label slot 2: checks that ids and slots are not confused
TEXT_WITH_MARKUP = '<img src=x onerror="window.pwned=1">'


def _load_preview_module():
    spec = importlib.util.spec_from_file_location("memvos_preview_for_web_test", ROOT / "nodes" / "preview.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preview = _load_preview_module()


def synthetic_clip(num_frames=24, height=120, width=200):
    """Gradient background, a light square (object 1) moving right, a cyan disc (object 3) moving down."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    background = torch.stack([40 + 60 * xs / width, 60 + 40 * ys / height, 90 + 60 * xs / width], -1) / 255
    frames = background.expand(num_frames, height, width, 3).clone()
    labels = torch.zeros(num_frames, height, width, dtype=torch.int64)
    for t in range(num_frames):
        square = (xs >= 10 + 5 * t) & (xs < 46 + 5 * t) & (ys >= 20) & (ys < 56)
        disc = (xs - 150) ** 2 + (ys - (20 + 3 * t)) ** 2 < 20 ** 2
        frames[t][square] = torch.tensor([230, 230, 230]) / 255
        frames[t][disc] = torch.tensor([40, 200, 220]) / 255
        labels[t][square] = 1
        labels[t][disc] = 3
    return frames, labels


# ----------------------------------------------------------------------------- server

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    temp_dir = tmp_path_factory.mktemp("comfy_temp")
    frames, labels = synthetic_clip()
    entry = preview.write_preview(
        temp_dir, frames, labels, fps=12, object_ids=OBJECT_IDS, frame_offset=FRAME_OFFSET,
        keyframes=[{"frame": 100, "objects": [1, 3]}, {"frame": 112, "objects": [3]}],
        suggestions=[
            {"frame": 117, "object_id": 1, "reason": "object may be lost", "score": 0.8, "detail": "area dropped 60%"},
            {"frame": 120, "object_id": 3, "reason": TEXT_WITH_MARKUP, "score": 0.5, "detail": "<b>bold</b>"},
            {"frame": 50, "object_id": 1, "reason": "outside the previewed range", "score": 0.9},
        ],
        stale=[(104, 106), (118, 200)],  # clip ranges kept by a span re-run (the second runs past the end)
        max_side=160, page_px=512)
    folder = temp_dir / entry["subfolder"]
    (folder / "broken.json").write_text("{not json")
    manifest = preview.read_manifest(temp_dir, entry)
    (folder / "future.json").write_text(json.dumps({**manifest, "version": 99}))
    with StubServer(dirs={"temp": temp_dir}) as server:
        yield {"url": server.url, "entry": entry, "manifest": manifest, "folder": folder, "requests": server.requests}


class Stub:
    """The page with the stub frontend, plus helpers that talk to its nodes."""

    def __init__(self, page, served, query=""):
        self.page = page
        self.served = served
        self.console_errors = []
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        page.on("pageerror", lambda exc: self.console_errors.append(f"page error: {exc}"))
        page.goto(served["url"] + query)
        page.wait_for_function("window.stubReady || window.stubError")
        assert page.evaluate("window.stubError || null") is None

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def deliver(self, node, output):
        self.js("""async ([node, output]) => {
            stub.app.deliverExecuted(stub[node].id, output);
            await stub[node].memvosPlayer.loading;
            await stub[node].memvosPlayer.settled();
        }""", [node, output])

    def show_preview(self, node="propagate", filename=None):
        entry = dict(self.served["entry"], **({"filename": filename} if filename else {}))
        self.deliver(node, {"memvos_preview": [entry]})

    def player(self, node="propagate"):
        return self.page.locator(f'.stub-node[data-node-id="{self.js(f"stub.{node}.id")}"] .memvos-player')

    def state(self, node="propagate"):
        return self.js(f"JSON.parse(JSON.stringify(stub.{node}.memvosPlayer.state))")

    def settle(self, node="propagate"):
        self.js(f"stub.{node}.memvosPlayer.settled()")

    def canvas_rgb(self, node="propagate"):
        """The player's canvas (tile resolution) as an ``[h, w, 3]`` uint8 array."""
        self.settle(node)
        width, height, data = self.js(f"""() => {{
            const c = stub.{node}.memvosPlayer.element.querySelector('canvas.memvos-view');
            return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
        }}""")
        return np.array(data, dtype=np.uint8).reshape(height, width, 4)[..., :3]


@pytest.fixture
def stub(browser, served):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    stub = Stub(page, served)
    yield stub
    errors = list(stub.console_errors)
    page.close()
    assert errors == [], f"console errors in the page: {errors}"


def tile_of(served, frame, kind):
    """Frame ``frame``'s tile cut from the atlas page in Python (labels: slots; frames: RGB)."""
    manifest = served["manifest"]
    width, height = manifest["tile"]["width"], manifest["tile"]["height"]
    page = next(p for p in manifest["pages"] if p["first_frame"] <= frame < p["first_frame"] + p["count"])
    row, col = divmod(frame - page["first_frame"], page["cols"])
    with Image.open(served["folder"] / page[kind]) as image:
        array = np.asarray(image.convert("L" if kind == "labels" else "RGB"))
    return array[row * height:(row + 1) * height, col * width:(col + 1) * width]


def colour(object_id):
    return np.array(preview._colour_of(object_id), dtype=np.int32)


# ----------------------------------------------------------------------------- tests

def test_without_a_preview_the_player_shows_a_hint(stub):
    # API mode: the Composite node never received a preview; nothing breaks, a hint is shown.
    player = stub.player("composite")
    assert player.locator(".memvos-hint").is_visible()
    assert "No preview yet" in player.locator(".memvos-hint").text_content()
    assert player.locator("button.memvos-play").is_disabled()
    assert not player.locator(".memvos-error").is_visible()
    stub.deliver("lonely", {})  # executed, but the output carries no preview
    stub.deliver("lonely", {"memvos_preview": []})
    assert "No preview yet" in stub.player("lonely").locator(".memvos-hint").text_content()
    assert stub.js("stub.lonely.memvosPlayer.manifest") is None
    # Only the entry modules register extensions; player/ and keyframes/ have no import side effects.
    assert stub.js("stub.app.extensions.map(e => e.name)") == ["memvos.keyframes", "memvos.player"]
    # The DOM widget is not serialised into the workflow or the prompt.
    assert stub.js("stub.propagate.widgets.find(w => w.name === 'memvos_player').serialize") is False
    assert stub.js("stub.propagate.widgets.find(w => w.name === 'memvos_player').options.serialize") is False


def test_broken_or_missing_manifests_show_an_error_line(stub):
    for filename, expected in [("broken.json", "not valid JSON"), ("future.json", "version 99"),
                               ("missing.json", "files are gone")]:
        stub.show_preview("lonely", filename=filename)
        error = stub.player("lonely").locator(".memvos-error")
        assert error.is_visible() and expected in error.text_content(), (filename, error.text_content())
    # The 404 of the missing file is logged by the browser itself; nothing else may be.
    stub.console_errors[:] = [e for e in stub.console_errors if "404" not in e]
    stub.show_preview("lonely")  # a good preview afterwards replaces the error
    assert not stub.player("lonely").locator(".memvos-error").is_visible()
    assert stub.js("stub.lonely.memvosPlayer.drawnFrame") == 0


def test_outputs_restored_from_history_reach_the_player(stub, served):
    # The frontend hands outputs of a reopened job to extensions, keyed by execution (node) id.
    stub.js("""(entry) => stub.app.extensions.find(e => e.name === "memvos.player").onNodeOutputsUpdated(
        {[String(stub.lonely.id)]: {memvos_preview: [entry]}, "999": {memvos_preview: [entry]}})""", served["entry"])
    stub.js("async () => { await stub.lonely.memvosPlayer.loading; await stub.lonely.memvosPlayer.settled(); }")
    assert stub.js("stub.lonely.memvosPlayer.drawnFrame") == 0
    assert stub.js("stub.lonely.memvosPlayer.manifest.numFrames") == 24


@pytest.mark.parametrize("renderer", ["classic", "vue"])
def test_canvas_keeps_a_usable_size_in_both_renderers(browser, served, renderer):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        stub = Stub(page, served, query=f"?renderer={renderer}")
        stub.show_preview()
        box = stub.player().locator("canvas.memvos-view").bounding_box()
        widget = stub.player().bounding_box()
        assert box["width"] > 350 and box["height"] > 0.45 * box["width"], box  # tile aspect 160 x 96
        assert box["y"] + box["height"] <= widget["y"] + widget["height"]  # the controls still fit below
        assert stub.player().locator(".memvos-pick").is_visible()
        assert stub.console_errors == []
    finally:
        page.close()


def test_preview_loads_through_the_view_route(stub, served):
    served["requests"].clear()
    stub.show_preview()
    views = [r for r in served["requests"] if r.startswith("/api/view?")]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(views[0]).query)
    assert query["type"] == ["temp"] and query["subfolder"] == [served["entry"]["subfolder"]]
    assert query["filename"] == [served["entry"]["filename"]]
    player = stub.player()
    assert player.locator(".memvos-counter").text_content() == "frame 100 \u00b7 1/24"
    assert player.locator(".memvos-object").count() == 2
    assert not player.locator(".memvos-hint").is_visible()


def test_play_advances_and_pause_stops(stub):
    stub.show_preview()
    player = stub.player()
    player.locator("button.memvos-play").click()
    stub.page.wait_for_function("stub.propagate.memvosPlayer.state.frame >= 3", timeout=5000)
    assert stub.state()["playing"] is True
    player.locator("button.memvos-play").click()
    state = stub.state()
    assert state["playing"] is False
    stub.page.wait_for_timeout(300)  # at 12 fps, 3 more frames would have passed
    assert stub.state()["frame"] == state["frame"]


def test_scrub_draws_each_object_where_its_label_is(stub, served):
    stub.show_preview()
    player = stub.player()
    for slider in player.locator("input.memvos-opacity").all():
        slider.fill("1")
    player.locator("input.memvos-scrub").fill("7")
    assert stub.state()["frame"] == 7
    assert player.locator(".memvos-counter").text_content() == "frame 107 \u00b7 8/24"
    labels = tile_of(served, 7, "labels")
    # The browser reads the label page back bit-exactly.
    assert np.array_equal(np.array(stub.js("stub.propagate.memvosPlayer.readLabels(7)"), dtype=np.uint8).reshape(labels.shape), labels)
    rgb = stub.canvas_rgb().astype(np.int32)
    for slot, object_id in enumerate(OBJECT_IDS, start=1):
        inside = labels == slot
        assert inside.sum() > 100
        assert np.abs(rgb[inside] - colour(object_id)).max() <= 1, f"object {object_id} not drawn in its colour"
        assert (np.abs(rgb[~inside] - colour(object_id)).max(axis=1) <= 3).sum() == 0
    step_before = stub.canvas_rgb()
    player.locator("button.memvos-forward").click()
    assert stub.state()["frame"] == 8
    assert not np.array_equal(stub.canvas_rgb(), step_before)
    player.locator("button.memvos-back").click()
    assert stub.state()["frame"] == 7 and np.array_equal(stub.canvas_rgb(), step_before)


def test_object_toggle_and_opacity(stub, served):
    stub.show_preview()
    player = stub.player()
    player.locator("input.memvos-scrub").fill("5")
    frame = tile_of(served, 5, "frames").astype(np.int32)
    labels = tile_of(served, 5, "labels")
    square, disc = labels == 1, labels == 2
    player.locator('input.memvos-opacity[data-object="1"]').fill("1")
    player.locator('input.memvos-opacity[data-object="3"]').fill("1")
    player.locator('input.memvos-visible[data-object="1"]').click()
    state = stub.state()
    assert state["objects"]["1"] == {"visible": False, "opacity": 1} and state["objects"]["3"]["visible"] is True
    rgb = stub.canvas_rgb().astype(np.int32)
    assert np.abs(rgb[square] - frame[square]).mean() < 4, "a hidden object must show the plain frame"
    assert np.abs(rgb[disc] - colour(3)).max() <= 1
    player.locator('input.memvos-visible[data-object="1"]').click()
    assert np.abs(stub.canvas_rgb().astype(np.int32)[square] - colour(1)).max() <= 1
    player.locator('input.memvos-opacity[data-object="3"]').fill("0.5")
    assert stub.state()["objects"]["3"]["opacity"] == 0.5
    blended = 0.5 * colour(3) + 0.5 * frame[disc]
    assert np.abs(stub.canvas_rgb().astype(np.int32)[disc] - blended).mean() < 4
    player.locator('input.memvos-opacity[data-object="3"]').fill("0")
    assert np.abs(stub.canvas_rgb().astype(np.int32)[disc] - frame[disc]).mean() < 4


def test_marks_on_the_timeline_jump_and_explain(stub):
    stub.show_preview()
    player = stub.player()
    marks = player.locator(".memvos-marker")
    assert sorted(int(m.get_attribute("data-frame")) for m in marks.all()) == [0, 12, 17, 20]
    assert "key" in player.locator('.memvos-marker[data-frame="12"]').get_attribute("class")
    assert "suggest" in player.locator('.memvos-marker[data-frame="17"]').get_attribute("class")
    player.locator("button.memvos-play").click()
    player.locator('.memvos-marker[data-frame="17"]').click()  # a mark stops playback on its frame
    assert stub.state()["frame"] == 17 and stub.state()["playing"] is False
    stub.settle()
    assert stub.js("stub.propagate.memvosPlayer.drawnFrame") == 17
    info = player.locator(".memvos-info").text_content()
    assert "Frame 117" in info and "object may be lost" in info and "score 0.80" in info and "area dropped 60%" in info
    player.locator('.memvos-marker[data-frame="20"]').click()
    info = player.locator(".memvos-info").text_content()
    assert TEXT_WITH_MARKUP in info and "<b>bold</b>" in info  # shown as text, not markup
    assert player.locator("img, b").count() == 0 and stub.js("window.pwned === undefined")


def test_frames_computed_before_the_latest_change_are_marked_stale(stub, served):
    assert served["manifest"]["stale"] == [{"frame": 4, "count": 2}, {"frame": 18, "count": 6}]
    stub.show_preview()
    player = stub.player()
    bands = player.locator(".memvos-timeline .memvos-stale")
    found = [(int(b.get_attribute("data-frame")), int(b.get_attribute("data-count"))) for b in bands.all()]
    assert found == [(4, 2), (18, 6)]
    assert "hatched" in player.locator(".memvos-timeline").get_attribute("title")
    box = player.locator(".memvos-timeline").bounding_box()
    band = bands.nth(1).bounding_box()
    assert abs(band["x"] - (box["x"] + box["width"] * 18 / 24)) < 3 and abs(band["width"] - box["width"] * 6 / 24) < 3
    counter = player.locator(".memvos-counter")
    stub.js("stub.propagate.memvosPlayer.seek(5)")
    assert "from before the latest change" in counter.text_content() and "stale" in counter.get_attribute("class")
    stub.js("stub.propagate.memvosPlayer.seek(7)")
    assert counter.text_content() == "frame 107 \u00b7 8/24" and "stale" not in counter.get_attribute("class")
    # a band does not take the clicks meant for the bar: clicking over one still seeks there
    player.locator(".memvos-timeline").click(position={"x": box["width"] * 22.5 / 24, "y": box["height"] / 2})
    assert stub.state()["frame"] == 22


def test_fix_this_frame_opens_the_upstream_keyframes_editor_there(stub, served, artifacts_dir):
    stub.show_preview()
    stub.show_preview("lonely")
    player = stub.player()
    player.locator('.memvos-marker[data-frame="17"]').click()
    player.locator("button.memvos-pick").click()
    editor = "stub.keyframes.memvosKeyframes.editor"
    stub.js(f"{editor}.settled()")
    assert stub.js(f"{editor}.state.open") is True
    assert stub.js(f"{editor}.state.frame") == FRAME_OFFSET + 17, "the clip frame, not the preview index"
    assert "117" in player.locator(".memvos-status").text_content()
    assert "not loaded yet" in stub.page.locator(".memvos-editor .memvos-ed-message").text_content()
    stub.page.keyboard.press("Escape")
    assert stub.js(f"{editor}.state.open") is False
    assert stub.js("stub.keyframes.widgets.find(w => w.name === 'keyframes').value") == "", "nothing painted, nothing saved"

    lonely = stub.player("lonely")
    lonely.locator("button.memvos-pick").click()
    assert "No MemVOS Keyframes node is connected upstream" in lonely.locator(".memvos-status").text_content()
    assert stub.js(f"{editor}.state.open") is False

    stub.settle()
    node = stub.page.locator(f'.stub-node[data-node-id="{stub.js("stub.propagate.id")}"]')
    shot = artifacts_dir / "player.png"  # git-ignored; copy it to docs/ by hand to update the README's picture
    node.screenshot(path=str(shot))
    with Image.open(shot) as image:
        assert image.width >= 400 and image.height >= 350


def test_players_name_the_objects_as_the_editor_did(stub):
    """The names given in the Keyframes editor (its widget's object list), not "object 1", in every
    player downstream of it; an unnamed object and a player with no Keyframes upstream keep the id."""
    spec = {"format": "memvos-keyframes", "version": 1, "keyframes": [],
            "objects": [{"id": 1, "name": "hero"}, {"id": 3, "name": ""}, {"id": 2, "name": "<b>car</b>"}]}
    stub.js("(text) => { stub.keyframes.widgets.find(w => w.name === 'keyframes').value = text; }", json.dumps(spec))
    for node in ("propagate", "composite", "lonely"):
        stub.show_preview(node)
    for node, first in (("propagate", "hero"), ("composite", "hero"), ("lonely", "object 1")):
        labels = stub.player(node).locator(".memvos-object > span:not(.memvos-swatch)")
        assert labels.all_text_contents() == [first, "object 3"], node
        assert stub.player(node).locator('.memvos-object[data-object="1"] span[title="object 1"]').count() == 1
    player = stub.player()
    player.locator('.memvos-marker[data-frame="0"]').click()  # keyframe of objects 1 and 3
    assert "keyframe (hero, object 3)" in player.locator(".memvos-info").text_content()
    player.locator('.memvos-marker[data-frame="17"]').click()
    assert "suggested for hero: object may be lost" in player.locator(".memvos-info").text_content()
