"""Check a template on other footage in a real ComfyUI frontend, in headless Chromium (issue 25's
"templates fit any footage"; run by hand, never in CI: it needs a full ComfyUI and queues real
workflows).

    python3 tests/e2e_comfyui/check_template_in_comfyui.py --comfyui /path/to/ComfyUI \
        --python /path/to/venv/bin/python --base-dir /tmp/memvos_tpl/base --video /path/to/bigbuckbunny.mp4
    # or against a ComfyUI already running with this pack (its --base-directory given too):
    python3 tests/e2e_comfyui/check_template_in_comfyui.py --url http://127.0.0.1:8188 --base-dir DIR --video ...

For the classic canvas and then (unless --no-vue) the Vue "Nodes 2.0" renderer, with real mouse
clicks and keys: load example 5 (Load Video -> Keyframes -> Propagate -> Refine -> ...), swap its
video for ``--video`` (copied into input/; footage whose shape the bundled keyframe does not fit,
e.g. Big Buck Bunny at 1280x720), queue: the run fails on the Keyframes node and the node shows
the message with "Drop keyframes that do not fit"; the editor, opened without frames, shows the
error and the button; "Load frames" from the editor fails again and the editor stays above
ComfyUI's own error dialog; drop (a click in the editor), load the frames, paint a stroke, save,
run the workflow: it succeeds and Propagate's mask on frame 0 is the stroke. Screenshots of each
state go to --shots (comfyui[_vue]_template_*.png).
"""
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from check_keyframes_in_comfyui import (EDITOR, JS_EVENTS, JS_LABELS, as_array, drag, editor_settle,
                                        fetch_labels, key, wait_done)
from check_player_in_comfyui import JS_FRAME_NODES, JS_NODES_OF, VIEWPORT, screenshot, settle
from comfy_page import comfy_page, dismiss_dialogs
from comfy_server import ROOT, post_json, run_check

WORKFLOW = ROOT / "examples_workflows" / "memvos_5_long_shot_from_video.json"
BUNDLED = "memvos_example_keyframe_f00.png"

JS_PANEL = """(id) => {
  const n = window.app.graph.getNodeById(id), p = n.memvosKeyframes.panel.element;
  const vis = (sel) => { const e = p.querySelector(sel); return !!e && !e.hidden && e.getClientRects().length > 0; };
  return {error: p.querySelector('.memvos-kf-error')?.textContent ?? '', errorShown: vis('.memvos-kf-error'),
          drop: vis('.memvos-kf-drop'), chips: [...p.querySelectorAll('.memvos-kf-chip')].map((c) => c.textContent)};
}"""

# What the editor shows and what lies on top at the middle of its error line (it must be the editor
# itself, not ComfyUI's dialog or toast).
JS_EDITOR_VIEW = """(id) => {
  const ed = window.app.graph.getNodeById(id).memvosKeyframes.editor, root = ed.element;
  const q = (sel) => root.querySelector(sel);
  const vis = (e) => !!e && !e.hidden && e.getClientRects().length > 0;
  const err = q('.memvos-ed-error'), r = err.getBoundingClientRect();
  const top = vis(err) ? document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) : null;
  const dialogs = [...document.querySelectorAll('.p-dialog, .p-toast-message')].filter((d) => d.getClientRects().length)
    .map((d) => ({cls: d.className.slice(0, 60), z: getComputedStyle(d.closest('.p-dialog-mask') ?? d).zIndex}));
  return {open: ed.state.open, error: err.textContent, errorShown: vis(err), errorOnTop: !!top && root.contains(top),
          message: q('.memvos-ed-message-text')?.textContent ?? '', messageShown: vis(q('.memvos-ed-message')),
          drop: vis(q('.memvos-ed-drop')), status: q('.memvos-ed-status')?.textContent ?? '',
          editorZ: getComputedStyle(root).zIndex, dialogs};
}"""

JS_SPEC = "(id) => JSON.parse(window.app.graph.getNodeById(id).widgets.find((w) => w.name === 'keyframes').value)"


async def click_in(page, selector_js):
    """A real mouse click on the element the expression returns."""
    handle = await page.evaluate_handle(selector_js)
    await handle.click()


async def run_mode(p, report, url, args, vue):
    tag = f"[{'vue' if vue else 'classic'}] "
    prefix = f"comfyui_{'vue_' if vue else ''}template_"
    shots = Path(args.shots)
    async with comfy_page(p, url, report, tag, vue, shots / f"failed_template_{'vue' if vue else 'classic'}.png") as page:
        await page.evaluate("(wf) => window.app.loadGraphData(wf)", json.loads(WORKFLOW.read_text()))
        await settle(page, 1500)
        (node_id,) = await page.evaluate(JS_NODES_OF, ["MemVOSKeyframes"])
        (prop_id,) = await page.evaluate(JS_NODES_OF, ["MemVOSPropagate"])
        (video_id,) = await page.evaluate(JS_NODES_OF, ["LoadVideo"])
        swapped = await page.evaluate("""([vid, name, size, end]) => {
          const v = window.app.graph.getNodeById(vid).widgets.find((w) => w.name === 'file');
          v.value = name; v.callback?.(name);
          const s = window.app.graph._nodes.find((n) => (n.comfyClass ?? n.type) === 'MemVOSNewSession');
          s.widgets.find((w) => w.name === 'internal_size').value = size;
          const prop = window.app.graph._nodes.find((n) => (n.comfyClass ?? n.type) === 'MemVOSPropagate');
          prop.widgets.find((w) => w.name === 'end_frame').value = end;
          return v.value; }""", [video_id, args.video_name, args.internal_size, args.end_frame])
        spec = await page.evaluate(JS_SPEC, node_id)
        report.check(tag + "example 5 loaded, its video swapped for the footage", swapped == args.video_name
                     and [k["file"] for k in spec["keyframes"]] == [BUNDLED], f"video {swapped}; keyframes "
                     f"{[(k['frame'], k['file']) for k in spec['keyframes']]}")
        await page.evaluate(JS_EVENTS)

        # 1. Queue: the Keyframes node refuses the template's keyframe, and says so on the node.
        post_json(url, "/free", {"free_memory": True})
        await settle(page, 800)
        await page.evaluate("() => window.app.queuePrompt(0)")
        done = await wait_done(page, args.timeout)
        await settle(page, 1500)
        panel = await page.evaluate(JS_PANEL, node_id)
        report.check(tag + "queue: the run fails on the Keyframes node", done[0] == "execution_error"
                     and f'"node_id":"{node_id}"' in done[1].replace(" ", ""), done[1][:300])
        report.check(tag + "the node shows the message and \"Drop keyframes that do not fit\"",
                     panel["errorShown"] and BUNDLED in panel["error"] and "different aspect ratio" in panel["error"]
                     and panel["drop"], panel["error"][:300])
        dialogs = await page.evaluate("() => [...document.querySelectorAll('.p-dialog')].filter((d) => d.getClientRects().length)"
                                      ".map((d) => d.querySelector('.p-dialog-header')?.textContent?.trim() ?? d.className)")
        await page.evaluate(JS_FRAME_NODES, [[video_id, node_id, prop_id], 1.0])
        await page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)
        await settle(page)
        report.check(tag + "screenshot: ComfyUI's own error dialog as it opened", True,
                     f"{await screenshot(page, shots / (prefix + 'error_dialog.png'))}; dialogs {dialogs}")
        await dismiss_dialogs(page)
        await settle(page)
        report.check(tag + "screenshot: the node with the message and the drop button", True,
                     await screenshot(page, shots / (prefix + 'node_error.png')))

        # 2. The editor without frames: the error and the button, above everything.
        await click_in(page, f"() => {EDITOR.format(id=node_id).replace('.editor', '.panel.element')}.querySelector('.memvos-kf-open')")
        await editor_settle(page, node_id)
        await settle(page, 500)
        view = await page.evaluate(JS_EDITOR_VIEW, node_id)
        report.check(tag + "the editor without frames shows the error and the drop button",
                     view["open"] and view["errorShown"] and BUNDLED in view["error"] and view["messageShown"]
                     and BUNDLED in view["message"] and view["drop"] and "Running this node" not in view["status"]
                     and view["errorOnTop"], json.dumps(view)[:500])
        report.check(tag + "screenshot: the editor without frames", True,
                     await screenshot(page, shots / (prefix + "editor_error.png")))

        # 3. "Load frames" from the editor fails again: ComfyUI's dialog must not cover the editor.
        await click_in(page, f"() => {EDITOR.format(id=node_id)}.element.querySelector('.memvos-ed-load')")
        done = await wait_done(page, args.timeout)
        await settle(page, 1500)
        view = await page.evaluate(JS_EDITOR_VIEW, node_id)
        report.check(tag + "Load frames fails again; the editor stays above ComfyUI's error dialog",
                     done[0] == "execution_error" and view["open"] and view["errorShown"] and view["errorOnTop"]
                     and view["drop"], f"{done[0]}; editor z {view['editorZ']}, dialogs {view['dialogs']}, "
                     f"error on top {view['errorOnTop']}")
        report.check(tag + "screenshot: the editor over ComfyUI's dialog", True,
                     await screenshot(page, shots / (prefix + "editor_over_dialog.png")))

        # 4. Drop (a real click in the editor): the list loses the keyframe, the error goes.
        await click_in(page, f"() => {EDITOR.format(id=node_id)}.element.querySelector('.memvos-ed-drop')")
        await editor_settle(page, node_id)
        spec = await page.evaluate(JS_SPEC, node_id)
        view = await page.evaluate(JS_EDITOR_VIEW, node_id)
        panel = await page.evaluate(JS_PANEL, node_id)
        report.check(tag + "drop (a click in the editor) empties the list and clears the error",
                     spec["keyframes"] == [] and not view["errorShown"] and not view["drop"] and not panel["errorShown"]
                     and not panel["drop"] and [o["name"] for o in spec["objects"]] == ["orange ellipse", "blue square"],
                     f"keyframes {spec['keyframes']}, objects {[o['name'] for o in spec['objects']]}; status {view['status'][:120]!r}")
        report.check(tag + "screenshot: after the drop", True, await screenshot(page, shots / (prefix + "dropped.png")))

        # 5. Load the frames (the node runs now), paint a stroke on frame 0, save.
        await click_in(page, f"() => {EDITOR.format(id=node_id)}.element.querySelector('.memvos-ed-load')")
        done = await wait_done(page, args.timeout)
        await editor_settle(page, node_id)
        shot = await page.evaluate("(id) => window.app.graph.getNodeById(id).memvosShot", node_id)
        report.check(tag + "Load frames now runs the node: the editor has the footage",
                     done[0] == "execution_success" and shot and shot["width"] == args.video_size[0]
                     and shot["height"] == args.video_size[1], f"{done[0]}; shot {shot and {k: shot[k] for k in ('numFrames', 'width', 'height')}}")
        await page.evaluate(f"async () => {{ const ed = {EDITOR.format(id=node_id)}; await ed.goTo(0); }}")
        await editor_settle(page, node_id)
        await key(page, node_id, "1")
        await key(page, node_id, "b")
        await page.evaluate(f"() => {EDITOR.format(id=node_id)}.act(['size', 1])")
        w, h = args.video_size
        await drag(page, node_id, [(w * 0.35, h * 0.45), (w * 0.45, h * 0.5), (w * 0.55, h * 0.55)])
        painted = as_array(await page.evaluate(JS_LABELS, [node_id, 0]))
        report.check(tag + "a brush stroke of object 1 on frame 0 (real mouse)", (painted == 1).sum() > 500,
                     f"{int((painted == 1).sum())} px")
        report.check(tag + "screenshot: the stroke on the footage", True,
                     await screenshot(page, shots / (prefix + "painted.png")))
        await key(page, node_id, "Control+s")
        await key(page, node_id, "Escape")
        spec = await page.evaluate(JS_SPEC, node_id)
        report.check(tag + "saved: the list holds the new keyframe only", [k["frame"] for k in spec["keyframes"]] == [0]
                     and spec["keyframes"][0]["file"].startswith("memvos/"), json.dumps(spec["keyframes"]))

        # 6. Run: Propagate succeeds, and its mask on frame 0 is the stroke.
        await page.evaluate("() => window.app.queuePrompt(0)")
        started = time.time()
        done = await wait_done(page, args.timeout)
        took = time.time() - started
        entry = await page.evaluate("async (id) => { const p = window.app.graph.getNodeById(id).memvosPlayer; "
                                    "await p.loading; await p.settled(); return p.entry; }", prop_id)
        back0 = await fetch_labels(page, entry and entry["masks_token"], 0)
        frames = await page.evaluate("(id) => window.app.graph.getNodeById(id).memvosPlayer.manifest?.numFrames ?? 0", prop_id)
        report.check(tag + "the workflow runs; Propagate's mask on frame 0 is the stroke",
                     done[0] == "execution_success" and isinstance(back0, np.ndarray) and np.array_equal(back0, painted),
                     f"{done[0]} in {took:.0f} s; player {frames} frames" + ("" if done[0] == "execution_success" else f": {done[1][:300]}"))
        # ComfyUI's dialog of the refused run opened under the editor and is still there.
        stale = await page.evaluate("() => [...document.querySelectorAll('.p-dialog')].filter((d) => d.getClientRects().length).length")
        await dismiss_dialogs(page)
        await page.evaluate(JS_FRAME_NODES, [[node_id, prop_id], 1.0])
        await page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)
        await settle(page)
        report.check(tag + f"screenshot: the node and Propagate's player after the run ({stale} stale ComfyUI dialog closed first)", True,
                     await screenshot(page, shots / (prefix + "run.png")))


async def run_browser(report, url, args):
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        for vue in (False,) if args.no_vue else (True,) if args.only_vue else (False, True):
            try:
                await run_mode(p, report, url, args, vue)
            except Exception as exc:  # report and go on with the other renderer
                report.check(f"[{'vue' if vue else 'classic'}] ran to the end", False, f"{type(exc).__name__}: {str(exc)[:800]}")


def add_arguments(parser):
    parser.add_argument("--video", required=True, help="footage the template's keyframe does not fit (e.g. 1280x720)")
    parser.add_argument("--end-frame", type=int, default=-1, help="Propagate's end_frame for the last run (-1: the whole shot)")
    parser.add_argument("--only-vue", action="store_true", help="skip the classic pass")


def main():
    import av

    def browser(report, url, args):
        # The footage goes into input/ before the page loads; its size is what the editor must show.
        video = Path(args.video)
        target = Path(args.base_dir) / "input" / video.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(video, target)
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            args.video_size = (stream.codec_context.width, stream.codec_context.height)
        args.video_name = video.name
        return run_browser(report, url, args)
    return run_check(__doc__, browser, "/tmp/memvos_tpl/base", add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
