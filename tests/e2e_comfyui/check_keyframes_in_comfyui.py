"""Check the Keyframes node's editor (web/keyframes/) in a real ComfyUI frontend, in headless Chromium
(run by hand; never in CI: it needs a full ComfyUI install and queues real workflows).

    python3 tests/e2e_comfyui/check_keyframes_in_comfyui.py --comfyui /path/to/ComfyUI \
        --python /path/to/venv/bin/python --base-dir /tmp/memvos_kf/base [--shots docs]
    # or against a ComfyUI already running with this pack (its --base-directory given too):
    python3 tests/e2e_comfyui/check_keyframes_in_comfyui.py --url http://127.0.0.1:8188 --base-dir DIR

For the classic canvas and then (unless --no-vue) the Vue "Nodes 2.0" renderer, with real mouse
clicks and keys: load examples_workflows/memvos_1_one_keyframe_overlay.json; check the node's panel
and that the keyframe list is saved but not shown; "Load frames" (runs only what the node needs);
open the editor (the bundled keyframe of frame 0 comes back from input/); paint on frame 5, undo,
redo, switch objects; save (the PNG lands in input/memvos/ and equals what was painted); queue the
workflow and read Propagate's masks back at source size (the keyframes come back exactly); "Fix
this frame" in the player on frame 9 (prefilled with the propagated mask; keyframes 0 and 5 kept);
reload the page (the keyframes are found again). Prints one line per check; exits 1 on a failure.
"""
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from check_player_in_comfyui import JS_FRAME_NODES, JS_NODES_OF, VIEWPORT, screenshot, settle
from comfy_page import comfy_page, dismiss_dialogs
from comfy_server import EXTENSION_PATH, ROOT, get_json, post_json, run_check

WORKFLOW = ROOT / "examples_workflows" / "memvos_1_one_keyframe_overlay.json"
MEDIA = ROOT / "examples_workflows" / "media"
EDITOR = "window.app.graph.getNodeById({id}).memvosKeyframes.editor"

JS_EVENTS = """() => {
  const api = window.comfyAPI.api.api; window.__kf = {done: [], executing: []};
  for (const ev of ['execution_success', 'execution_error', 'execution_interrupted'])
    api.addEventListener(ev, (e) => window.__kf.done.push([ev, JSON.stringify(e.detail).slice(0, 1500)]));
  api.addEventListener('executing', (e) => window.__kf.executing.push(String(e.detail?.node ?? e.detail)));
}"""

JS_LABELS = """async ([id, frame]) => {
  const ed = window.app.graph.getNodeById(id).memvosKeyframes.editor;
  await ed.settled();
  const e = ed.entries.get(frame ?? ed.state.frame);
  return e ? {data: Array.from(e.labels.data), w: e.labels.width, h: e.labels.height, objects: [...e.objects].sort()} : null;
}"""


def as_array(got):
    return np.array(got["data"], dtype=np.uint8).reshape(got["h"], got["w"])


async def wait_done(page, timeout):
    await page.wait_for_function("() => window.__kf.done.length > 0", timeout=timeout * 1000, polling=500)
    done = await page.evaluate("() => window.__kf.done.shift()")
    return done


async def editor_state(page, node_id):
    return await page.evaluate(f"() => JSON.parse(JSON.stringify({EDITOR.format(id=node_id)}.state))")


async def editor_settle(page, node_id):
    await page.evaluate(f"async () => {{ await {EDITOR.format(id=node_id)}.settled(); await new Promise(requestAnimationFrame); }}")


async def drag(page, node_id, points, button="left"):
    to_client = f"([x, y]) => {EDITOR.format(id=node_id)}.sourceToClient(x, y)"
    await page.mouse.move(*await page.evaluate(to_client, list(points[0])))
    await page.mouse.down(button=button)
    for p in points[1:]:
        await page.mouse.move(*await page.evaluate(to_client, list(p)), steps=8)
    await page.mouse.up(button=button)
    await editor_settle(page, node_id)


async def key(page, node_id, name):
    await page.keyboard.press(name)
    await editor_settle(page, node_id)


async def fetch_labels(page, token, frame):
    """/memvos/labels from the page (ComfyUI's api.fetchApi), decoded here."""
    data = await page.evaluate("""async ([token, frame]) => {
      const r = await window.comfyAPI.api.api.fetchApi(`/memvos/labels?token=${token}&frame=${frame}`);
      return r.ok ? Array.from(new Uint8Array(await r.arrayBuffer())) : r.status;
    }""", [token, frame])
    if isinstance(data, int):
        return data
    return np.asarray(Image.open(io.BytesIO(bytes(data))))


async def run_mode(p, report, url, args, vue):
    tag = f"[{'vue' if vue else 'classic'}] "
    shots = Path(args.shots)
    async with comfy_page(p, url, report, tag, vue, shots / f"failed_{'vue' if vue else 'classic'}.png") as page:
        info = await page.evaluate("""() => ({extensions: window.app.extensions.map((e) => e.name).filter((n) => /memvos/i.test(n)),
                                              vue: window.app.extensionManager.setting.get('Comfy.VueNodes.Enabled')})""")
        report.check(tag + "extensions registered", sorted(info["extensions"]) == ["memvos.keyframes", "memvos.player"]
                     and info["vue"] == vue, json.dumps(info))
        await page.evaluate("(wf) => window.app.loadGraphData(wf)", json.loads(WORKFLOW.read_text()))
        await settle(page, 1500)
        (node_id,) = await page.evaluate(JS_NODES_OF, ["MemVOSKeyframes"])
        (prop_id,) = await page.evaluate(JS_NODES_OF, ["MemVOSPropagate"])
        panel = await page.evaluate("""(id) => {
          const n = window.app.graph.getNodeById(id), p = n.memvosKeyframes?.panel.element;
          const w = n.widgets.find((w) => w.name === 'keyframes');
          const textareas = [...document.querySelectorAll('textarea')].filter((t) => t.offsetParent && t.value.includes('memvos-keyframes'));
          const r = p?.getBoundingClientRect();
          return {inDom: !!p && document.body.contains(p), rect: r && [r.width, r.height],
                  chips: p ? [...p.querySelectorAll('.memvos-kf-chip')].map((c) => c.textContent) : [],
                  hidden: !!w?.hidden && !!w?.options?.hidden, textVisible: textareas.length};
        }""", node_id)
        report.check(tag + "Keyframes node shows its panel, the list is hidden", panel["inDom"] and panel["chips"] == ["0"]
                     and panel["hidden"] and panel["textVisible"] == 0, json.dumps(panel))
        saved = await page.evaluate("""async (id) => {
          const wf = window.app.graph.serialize(); const api = (await window.app.graphToPrompt()).output;
          const values = wf.nodes.find((n) => n.id === id).widgets_values;
          const saved = window.app.graph.getNodeById(id).widgets.filter((w) => w.serialize !== false && w.options?.serialize !== false);
          return {values: values.length, widgets: saved.length, first: String(values[0]).slice(0, 40),
                  prompt: Object.keys(api[String(id)].inputs).sort()};
        }""", node_id)
        # one value per saved widget (the node's inputs grow: issue 23 added `prompts`), none for the panel
        report.check(tag + "the keyframe list is saved and sent; the panel is not", saved["values"] == saved["widgets"]
                     and saved["first"].startswith('{"format": "memvos-keyframes"') and "keyframes" in saved["prompt"]
                     and not any("panel" in k for k in saved["prompt"]), json.dumps(saved))
        await page.evaluate(JS_FRAME_NODES, [[node_id], 1.0])
        await settle(page)
        await dismiss_dialogs(page)

        # Load frames: a run of just the Keyframes node and what feeds it.
        await page.evaluate(JS_EVENTS)
        await page.evaluate("(size) => { const s = window.app.graph._nodes.find((n) => (n.comfyClass ?? n.type) === 'MemVOSNewSession');"
                            " s.widgets.find((w) => w.name === 'internal_size').value = size; }", args.internal_size)
        post_json(url, "/free", {"free_memory": True})
        await settle(page, 1000)
        await (await page.evaluate_handle(f"() => {EDITOR.format(id=node_id).replace('.editor', '.panel.element')}"
                                          ".querySelector('.memvos-kf-load')")).click()
        done = await wait_done(page, args.timeout)
        ran = await page.evaluate("() => window.__kf.executing")
        shot = await page.evaluate("(id) => window.app.graph.getNodeById(id).memvosShot", node_id)
        report.check(tag + "Load frames runs only what the node needs", done[0] == "execution_success" and shot
                     and shot["numFrames"] == 16 and str(prop_id) not in ran,
                     f"{done[0]}; executed {ran}; shot {shot and {k: shot[k] for k in ('numFrames', 'width', 'height')}}")

        # The editor: the bundled keyframe comes back from input/.
        await (await page.evaluate_handle(f"() => {EDITOR.format(id=node_id).replace('.editor', '.panel.element')}"
                                          ".querySelector('.memvos-kf-open')")).click()
        await editor_settle(page, node_id)
        got = await page.evaluate(JS_LABELS, [node_id, 0])
        bundled = np.asarray(Image.open(MEDIA / "memvos_example_keyframe_f00.png"))
        report.check(tag + "editor opens on keyframe 0, read back exactly from input/", got and np.array_equal(as_array(got), bundled),
                     f"objects {got and got['objects']}, pixels {got and int((as_array(got) > 0).sum())}")

        nodes_before = await page.evaluate("() => window.app.graph._nodes.length")
        for _ in range(5):
            await key(page, node_id, "ArrowRight")
        await key(page, node_id, "2")
        await page.evaluate(f"() => {EDITOR.format(id=node_id)}.act(['size', 1])")
        await drag(page, node_id, [(120, 40), (150, 70)])
        painted = as_array(await page.evaluate(JS_LABELS, [node_id, 5]))
        await key(page, node_id, "Control+z")
        undone = as_array(await page.evaluate(JS_LABELS, [node_id, 5]))
        await key(page, node_id, "Control+Shift+Z")
        redone = as_array(await page.evaluate(JS_LABELS, [node_id, 5]))
        nodes_after = await page.evaluate("() => window.app.graph._nodes.length")
        report.check(tag + "paint object 2 on frame 5, undo, redo (real mouse and keys)",
                     (painted == 2).sum() > 100 and not undone.any() and np.array_equal(redone, painted)
                     and nodes_after == nodes_before,
                     f"{int((painted == 2).sum())} px; graph still has {nodes_after} nodes (ComfyUI's own undo did not fire)")
        await key(page, node_id, "1")
        await key(page, node_id, "l")
        await drag(page, node_id, [(20, 80), (60, 80), (60, 100), (20, 100), (20, 81)])
        frame5 = as_array(await page.evaluate(JS_LABELS, [node_id, 5]))
        report.check(tag + "switch to object 1 and fill a lasso outline", (frame5 == 1).sum() > 500 and (frame5 == 2).sum() == (painted == 2).sum(),
                     f"object 1: {int((frame5 == 1).sum())} px, object 2: {int((frame5 == 2).sum())} px")
        await editor_settle(page, node_id)
        name = f"comfyui_{'vue_' if vue else ''}keyframe_editor.png"
        report.check(tag + "screenshot of the editor", True, await screenshot(page, shots / name))
        await key(page, node_id, "Control+s")
        spec = json.loads(await page.evaluate("(id) => window.app.graph.getNodeById(id).widgets.find((w) => w.name === 'keyframes').value", node_id))
        k5 = next((k for k in spec["keyframes"] if k["frame"] == 5), None)
        on_disk = np.asarray(Image.open(Path(args.base_dir) / "input" / k5["file"])) if k5 else None
        report.check(tag + "save uploads an indexed PNG into input/memvos and lists it", k5 and k5["file"].startswith("memvos/")
                     and np.array_equal(on_disk, frame5) and [k["frame"] for k in spec["keyframes"]] == [0, 5],
                     f"{k5 and k5['file']}; list {[(k['frame'], k['objects']) for k in spec['keyframes']]}")
        await key(page, node_id, "Escape")

        # The whole workflow: Propagate's masks at the keyframes are exactly the keyframes.
        await page.evaluate("() => window.app.queuePrompt(0)")
        started = time.time()
        done = await wait_done(page, args.timeout)
        entry = await page.evaluate("async (id) => { const p = window.app.graph.getNodeById(id).memvosPlayer; await p.loading; await p.settled(); return p.entry; }", prop_id)
        back5 = await fetch_labels(page, entry and entry["masks_token"], 5)
        back0 = await fetch_labels(page, entry and entry["masks_token"], 0)
        report.check(tag + "the workflow runs; Propagate's masks on frames 0 and 5 are the keyframes",
                     done[0] == "execution_success" and np.array_equal(back5, frame5) and np.array_equal(back0, bundled),
                     f"{done[0]} in {time.time() - started:.1f} s; frame 5: {dict(zip(*np.unique(back5, return_counts=True)))} "
                     if isinstance(back5, np.ndarray) else f"{done[0]}: {done[1][:300]}; labels {back5}")

        # Fix this frame in the player, on frame 9.
        await page.evaluate(JS_FRAME_NODES, [[prop_id], 1.0])
        await settle(page)
        scrub = await page.evaluate_handle("(id) => window.app.graph.getNodeById(id).memvosPlayer.element.querySelector('.memvos-scrub')", prop_id)
        await scrub.evaluate("(s) => { s.value = '9'; s.dispatchEvent(new Event('input')); }")
        await (await page.evaluate_handle("(id) => window.app.graph.getNodeById(id).memvosPlayer.element.querySelector('.memvos-pick')", prop_id)).click()
        await editor_settle(page, node_id)
        state = await editor_state(page, node_id)
        propagated = await fetch_labels(page, entry["masks_token"], 9)
        prefilled = as_array(await page.evaluate(JS_LABELS, [node_id, 9]))
        report.check(tag + "Fix this frame opens the editor on frame 9 with the propagated mask",
                     state["open"] and state["frame"] == 9 and np.array_equal(prefilled, propagated),
                     f"frame {state['frame']}, objects {sorted(set(np.unique(prefilled)) - {0})}")
        await key(page, node_id, "b")
        await key(page, node_id, "n")  # a new object: the frame changes whatever the propagation drew
        await drag(page, node_id, [(10, 10), (30, 10)])
        fixed = as_array(await page.evaluate(JS_LABELS, [node_id, 9]))
        await key(page, node_id, "Escape")
        after = json.loads(await page.evaluate("(id) => window.app.graph.getNodeById(id).widgets.find((w) => w.name === 'keyframes').value", node_id))
        k9 = next((k for k in after["keyframes"] if k["frame"] == 9), None)
        report.check(tag + "the fix adds keyframe 9 and keeps keyframes 0 and 5 as they were",
                     [k["frame"] for k in after["keyframes"]] == [0, 5, 9] and after["keyframes"][:2] == spec["keyframes"]
                     and np.array_equal(np.asarray(Image.open(Path(args.base_dir) / "input" / k9["file"])), fixed),
                     json.dumps([(k["frame"], k["file"][-24:]) for k in after["keyframes"]]))

        await page.evaluate(JS_FRAME_NODES, [[node_id, prop_id], 1.0])
        await page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)  # no tooltip in the picture
        await settle(page)
        name = f"comfyui_{'vue_' if vue else ''}keyframes_node.png"
        report.check(tag + "screenshot of the Keyframes node and the player", True, await screenshot(page, shots / name))

        # Reload: the workflow (and so the keyframe list) is restored by the frontend.
        await settle(page, 1500)  # the frontend saves the open workflow shortly after a change
        await page.reload(wait_until="networkidle")
        await page.wait_for_function("() => window.app?.graph?._nodes?.length > 0", timeout=60000)
        await page.keyboard.press("Escape")
        await settle(page, 1500)
        chips = await page.evaluate("""() => { const n = window.app.graph._nodes.find((n) => (n.comfyClass ?? n.type) === 'MemVOSKeyframes');
          return n ? [...n.memvosKeyframes.panel.element.querySelectorAll('.memvos-kf-chip')].map((c) => c.textContent) : null; }""")
        report.check(tag + "after a page reload the keyframes are found again", chips == ["0", "5", "9"], f"chips {chips}")


async def run_browser(report, url, args):
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        for vue in (False,) if args.no_vue else (False, True):
            try:
                await run_mode(p, report, url, args, vue)
            except Exception as exc:  # report and go on with the other renderer
                report.check(f"[{'vue' if vue else 'classic'}] ran to the end", False, f"{type(exc).__name__}: {str(exc)[:800]}")


def server_checks(report, url):
    listed = get_json(url, "/extensions")
    report.check("/extensions lists the editor's modules", f"{EXTENSION_PATH}memvos_keyframes.js" in listed
                 and f"{EXTENSION_PATH}keyframes/editor.js" in listed, f"{len(listed)} modules in all")


def main():
    return run_check(__doc__, run_browser, "/tmp/memvos_kf/base", server_checks)


if __name__ == "__main__":
    sys.exit(main())
