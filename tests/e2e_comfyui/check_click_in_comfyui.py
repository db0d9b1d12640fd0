"""Check the keyframe editor's click tool (issue 23) in a real ComfyUI frontend, in headless Chromium,
and measure the click latency the browser sees (run by hand, never in CI: it needs a full ComfyUI,
a SAM 2.1 checkpoint in models/memvos and real footage).

    python3 tests/e2e_comfyui/check_click_in_comfyui.py --comfyui /path/to/ComfyUI \
        --python /path/to/venv/bin/python --base-dir /tmp/memvos_click/base \
        --video /path/to/clip_854x480.mp4 --video /path/to/clip_1280x720.mp4
    # or against a ComfyUI already running with this pack (its --base-directory given too):
    python3 tests/e2e_comfyui/check_click_in_comfyui.py --url http://127.0.0.1:8188 --base-dir DIR --video ...

When models/memvos has no SAM 2.1 file, the script writes SAM 2.1 tiny with generated weights (the
parity fixture's rule): the masks mean nothing, but the route, the network's cost and the UI are
real. For the classic canvas and then (unless --no-vue) the Vue "Nodes 2.0" renderer: load example
5, empty its keyframe list, and for each --video: swap it in, "Load frames", open the editor,
press C; left click, right click, drag a box and click again on one frame (the preview after each
is the route's best mask of the object), Enter accepts it into the frame (Ctrl+Z / Ctrl+Shift+Z
undo and redo it), then a first click and two later clicks on --frames more frames. The latency
of a click is from the pointerup event to the first animation frame after the preview was drawn;
the table gives the median of first clicks on a frame (the frame's embedding computed) and of
later clicks (the embedding cached).
"""
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from check_keyframes_in_comfyui import EDITOR, JS_EVENTS, JS_LABELS, as_array, editor_settle, key, wait_done
from check_player_in_comfyui import JS_NODES_OF, screenshot, settle
from comfy_page import comfy_page
from comfy_server import ROOT, run_check

WORKFLOW = ROOT / "examples_workflows" / "memvos_5_long_shot_from_video.json"
SAM2_NAME = "sam2.1_hiera_tiny.safetensors"

# Times a click: pointerup (window, capture: before the editor's handler) to the first animation
# frame after the click tool's answer was drawn. setTimeout: the editor's handler has replaced
# clickTool.settled by then.
JS_TIMER = """(id) => {
  const ed = window.app.graph.getNodeById(id).memvosKeyframes.editor;
  window.__clicks = [];
  window.addEventListener('pointerup', (e) => {
    if (!ed.state.open || ed.state.tool !== 'click' || e.target !== ed.element.querySelector('.memvos-ed-canvas')) return;
    const t0 = performance.now();
    setTimeout(() => ed.clickTool.settled.then(() => requestAnimationFrame(() => {
      const r = performance.getEntriesByType('resource').filter((x) => x.name.includes('/memvos/click')).pop();
      window.__clicks.push({ms: performance.now() - t0, request: r ? r.duration : null});
    })), 0);
  }, true);
}"""

JS_PROMPT = """(id) => { const p = window.app.graph.getNodeById(id).memvosKeyframes.editor.clickTool.prompt();
  return p && {frame: p.frame, id: p.id, points: p.points, box: p.box, chosen: p.chosen, scores: p.scores,
               count: p.masks?.length ?? 0, mask: p.masks ? Array.from(p.masks[p.chosen]) : null}; }"""


async def to_client(page, node_id, x, y):
    return await page.evaluate(f"([x, y]) => {EDITOR.format(id=node_id)}.sourceToClient(x, y)", [x, y])


async def timed_click(page, node_id, x, y, button="left", box_to=None):
    """One click (or a box drag to box_to) on the canvas; waits for the preview. -> {ms, request}."""
    before = await page.evaluate("() => window.__clicks.length")
    await page.mouse.move(*await to_client(page, node_id, x, y))
    await page.mouse.down(button=button)
    if box_to:
        await page.mouse.move(*await to_client(page, node_id, *box_to), steps=6)
    await page.mouse.up(button=button)
    await page.wait_for_function(f"() => window.__clicks.length > {before}", timeout=300000, polling=50)
    return await page.evaluate("() => window.__clicks[window.__clicks.length - 1]")


def shown_equals_mask(labels, prompt):
    """The preview: the object's pixels are exactly the chosen mask."""
    mask = np.array(prompt["mask"], dtype=np.uint8).reshape(labels.shape) > 0
    return bool(np.array_equal(labels == prompt["id"], mask)), int(mask.sum())


async def load_video(page, report, tag, node_id, video_id, name, args):
    await page.evaluate("""([vid, name]) => { const v = window.app.graph.getNodeById(vid).widgets.find((w) => w.name === 'file');
      v.value = name; v.callback?.(name); }""", [video_id, name])
    await page.evaluate(JS_EVENTS)
    await (await page.evaluate_handle(f"() => {EDITOR.format(id=node_id).replace('.editor', '.panel.element')}"
                                      ".querySelector('.memvos-kf-load')")).click()
    done = await wait_done(page, args.timeout)
    shot = await page.evaluate("(id) => window.app.graph.getNodeById(id).memvosShot", node_id)
    report.check(tag + f"Load frames of {name}", done[0] == "execution_success" and shot,
                 f"{done[0]}; {shot and (shot['numFrames'], shot['width'], shot['height'])}")
    return shot


async def drive_size(page, report, tag, node_id, shot, args, shots, prefix, warm):
    w, h = shot["width"], shot["height"]
    size = f"{w}x{h}"
    await (await page.evaluate_handle(f"() => {EDITOR.format(id=node_id).replace('.editor', '.panel.element')}"
                                      ".querySelector('.memvos-kf-open')")).click()
    await editor_settle(page, node_id)
    await page.evaluate(JS_TIMER, node_id)
    await key(page, node_id, "1")
    await key(page, node_id, "c")
    tool = await page.evaluate(f"() => {EDITOR.format(id=node_id)}.state.tool")
    report.check(tag + f"{size}: C selects the click tool", tool == "click", tool)
    rows = {"first": [], "later": []}
    if warm:  # the first click of the server's life also loads SAM 2.1: not a click's cost
        await page.evaluate(f"() => {EDITOR.format(id=node_id)}.goTo({shot['numFrames'] - 1})")
        await editor_settle(page, node_id)
        got = await timed_click(page, node_id, w * 0.5, h * 0.5)
        report.check(tag + "the first click of the server (loads SAM 2.1 from models/memvos)", True,
                     f"{got['ms']:.0f} ms (request {got['request'] or 0:.0f} ms)")
        await key(page, node_id, "Escape")

    frame = 10
    await page.evaluate(f"() => {EDITOR.format(id=node_id)}.goTo({frame})")
    await editor_settle(page, node_id)
    # what the frame held before the clicks (a keyframe saved at another size is shown resized)
    start = as_array(await page.evaluate(JS_LABELS, [node_id, frame]))
    first = await timed_click(page, node_id, w * 0.5, h * 0.55)
    rows["first"].append(first)
    prompt = await page.evaluate(JS_PROMPT, node_id)
    labels = as_array(await page.evaluate(JS_LABELS, [node_id, frame]))
    same, pixels = shown_equals_mask(labels, prompt)
    report.check(tag + f"{size}: left click: the preview is the route's best mask", same and prompt["points"][0][2] == 1
                 and prompt["count"] >= 1, f"{pixels} px, {prompt['count']} candidates, scores "
                 f"{[round(s, 2) for s in prompt['scores']]}; {first['ms']:.0f} ms")
    got = await timed_click(page, node_id, w * 0.2, h * 0.25, button="right")
    rows["later"].append(got)
    prompt = await page.evaluate(JS_PROMPT, node_id)
    labels = as_array(await page.evaluate(JS_LABELS, [node_id, frame]))
    same, pixels = shown_equals_mask(labels, prompt)
    report.check(tag + f"{size}: right click subtracts (a negative point), the preview follows", same
                 and [p[2] for p in prompt["points"]] == [1, 0], f"points {prompt['points']}; {pixels} px; {got['ms']:.0f} ms")
    got = await timed_click(page, node_id, w * 0.3, h * 0.3, box_to=(w * 0.75, h * 0.85))
    rows["later"].append(got)
    prompt = await page.evaluate(JS_PROMPT, node_id)
    labels = as_array(await page.evaluate(JS_LABELS, [node_id, frame]))
    same, pixels = shown_equals_mask(labels, prompt)
    box = prompt["box"]
    report.check(tag + f"{size}: a drag draws a box, the preview follows", same and box is not None
                 and abs(box[0] - w * 0.3) < 3 and abs(box[3] - h * 0.85) < 3,
                 f"box {[round(b) for b in box] if box else None}; {pixels} px; {got['ms']:.0f} ms")
    got = await timed_click(page, node_id, w * 0.55, h * 0.6)
    rows["later"].append(got)
    prompt = await page.evaluate(JS_PROMPT, node_id)
    await settle(page, 300)
    report.check(tag + f"{size}: screenshot of the click preview (2 positive, 1 negative click and a box)", True,
                 await screenshot(page, shots / f"{prefix}click_{h}p.png"))
    await key(page, node_id, "Enter")
    accepted = as_array(await page.evaluate(JS_LABELS, [node_id, frame]))
    same, pixels = shown_equals_mask(accepted, prompt)
    await key(page, node_id, "Control+z")
    undone = as_array(await page.evaluate(JS_LABELS, [node_id, frame]))
    await key(page, node_id, "Control+Shift+Z")
    redone = as_array(await page.evaluate(JS_LABELS, [node_id, frame]))
    state = await page.evaluate(f"() => {{ const ed = {EDITOR.format(id=node_id)}; return {{pending: !!ed.clickTool.prompt(), "
                                f"dirty: ed.entries.get({frame})?.dirty, objects: [...(ed.entries.get({frame})?.objects ?? [])]}}; }}")
    report.check(tag + f"{size}: Enter accepts the mask into the frame; Ctrl+Z / Ctrl+Shift+Z undo and redo it",
                 same and pixels > 0 and np.array_equal(undone, start) and np.array_equal(redone, accepted) and not state["pending"]
                 and state["dirty"] and state["objects"] == [1], f"{pixels} px of object 1; {json.dumps(state)}")

    for f in range(frame + 5, frame + 5 * (args.frames + 1), 5):
        await page.evaluate(f"() => {EDITOR.format(id=node_id)}.goTo({f})")
        await editor_settle(page, node_id)
        rows["first"].append(await timed_click(page, node_id, w * 0.45, h * 0.5))
        rows["later"].append(await timed_click(page, node_id, w * 0.6, h * 0.4))
        rows["later"].append(await timed_click(page, node_id, w * 0.3, h * 0.7, button="right"))
        await key(page, node_id, "Escape")  # drops the preview (never saved unaccepted)
    await key(page, node_id, "Escape")  # closes (saves the accepted keyframe)
    med = {k: statistics.median(r["ms"] for r in v) for k, v in rows.items()}
    req = {k: statistics.median(r["request"] or 0 for r in v) for k, v in rows.items()}
    report.check(tag + f"{size}: click latency seen in the browser (median)", True,
                 f"first click on a frame {med['first']:.0f} ms (request {req['first']:.0f} ms, n={len(rows['first'])}); "
                 f"later clicks {med['later']:.0f} ms (request {req['later']:.0f} ms, n={len(rows['later'])})")
    return {"size": size, "first_ms": [round(r["ms"]) for r in rows["first"]], "later_ms": [round(r["ms"]) for r in rows["later"]],
            "first_request_ms": [round(r["request"] or 0) for r in rows["first"]],
            "later_request_ms": [round(r["request"] or 0) for r in rows["later"]]}


async def run_mode(p, report, url, args, vue, results):
    tag = f"[{'vue' if vue else 'classic'}] "
    prefix = f"comfyui_{'vue_' if vue else ''}"
    shots = Path(args.shots)
    async with comfy_page(p, url, report, tag, vue, shots / f"failed_click_{'vue' if vue else 'classic'}.png") as page:
        await page.evaluate("(wf) => window.app.loadGraphData(wf)", json.loads(WORKFLOW.read_text()))
        await settle(page, 1500)
        (node_id,) = await page.evaluate(JS_NODES_OF, ["MemVOSKeyframes"])
        (video_id,) = await page.evaluate(JS_NODES_OF, ["LoadVideo"])
        await page.evaluate("""(id) => { const w = window.app.graph.getNodeById(id).widgets.find((w) => w.name === 'keyframes');
          const spec = JSON.parse(w.value); spec.keyframes = []; w.value = JSON.stringify(spec);
          window.app.graph.getNodeById(id).memvosKeyframes.panel.refresh(); }""", node_id)
        for i, name in enumerate(args.video_names):
            shot = await load_video(page, report, tag, node_id, video_id, name, args)
            if shot:
                row = await drive_size(page, report, tag, node_id, shot, args, shots, prefix, warm=(i == 0 and not vue))
                results.append({"renderer": "vue" if vue else "classic", **row})


async def run_browser(report, url, args):
    from playwright.async_api import async_playwright
    results = []
    async with async_playwright() as p:
        for vue in (False,) if args.no_vue else (False, True):
            try:
                await run_mode(p, report, url, args, vue, results)
            except Exception as exc:  # report and go on with the other renderer
                report.check(f"[{'vue' if vue else 'classic'}] ran to the end", False, f"{type(exc).__name__}: {str(exc)[:800]}")
    print("\nclick latency seen from the browser, ms (pointerup to the preview drawn); the request's own time in ()")
    print(f"{'renderer':>8} {'frame':>9} | {'first click on a frame':>26} | {'later clicks':>26}")
    for r in results:
        first = f"{statistics.median(r['first_ms']):.0f} ({statistics.median(r['first_request_ms']):.0f}) n={len(r['first_ms'])}"
        later = f"{statistics.median(r['later_ms']):.0f} ({statistics.median(r['later_request_ms']):.0f}) n={len(r['later_ms'])}"
        print(f"{r['renderer']:>8} {r['size']:>9} | {first:>26} | {later:>26}")
    if args.latency_json:
        Path(args.latency_json).write_text(json.dumps(results, indent=1))


def add_arguments(parser):
    parser.add_argument("--video", action="append", required=True, help="footage (give it once per frame size)")
    parser.add_argument("--frames", type=int, default=3, help="frames with a first click after the first one")
    parser.add_argument("--latency-json", help="write the latencies here")


def ensure_sam2(base):
    """SAM 2.1 tiny with generated weights in ``base``/models/memvos, unless a SAM 2.1 file is there."""
    sam2 = Path(base) / "models" / "memvos" / SAM2_NAME
    if not any(p.name.startswith("sam2") for p in sam2.parent.glob("*")):
        sam2.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c",
                        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tests'];"
                        "from safetensors.torch import save_file; from sam2_fixture import generated_state;"
                        "save_file({k: v.contiguous() for k, v in generated_state().items()}, sys.argv[2])",
                        str(ROOT), str(sam2)], check=True)


def copy_into_input(base, path):
    """``path`` copied into ``base``/input (once); returns its name there."""
    path = Path(path)
    target = Path(base) / "input" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(path, target)
    return path.name


def main():
    def browser(report, url, args):
        ensure_sam2(args.base_dir)
        args.video_names = [copy_into_input(args.base_dir, video) for video in args.video]
        return run_browser(report, url, args)
    return run_check(__doc__, browser, "/tmp/memvos_click/base", add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
