"""Check the "Fix this frame -> run" loop (issue 23) in a real ComfyUI frontend, in headless Chromium
(run by hand, never in CI: it needs a full ComfyUI, real footage, and it queues real workflows).

    python3 tests/e2e_comfyui/check_loop_in_comfyui.py --comfyui /path/to/ComfyUI \
        --python /path/to/venv/bin/python --base-dir /tmp/memvos_loop/base --video clip_854x480.mp4
    # or against a ComfyUI already running with this pack (its --base-directory and log given too):
    python3 tests/e2e_comfyui/check_loop_in_comfyui.py --url http://127.0.0.1:8188 --base-dir DIR \
        --server-log LOG --video ...

For the classic canvas and then (unless --no-vue) the Vue "Nodes 2.0" renderer, and then (with
--frames-source) once more in the classic canvas with MemVOS Load Frames (a folder of the clip's
first frames) in place of Load Video: load example 5, swap its video for --video, set Propagate's
end_frame so that --frames frames run, empty the keyframe list; "Load frames", paint object 1
with the brush on three keyframes (real mouse), save, queue Propagate (--whole-graph: the whole
workflow). Then, for each of --fix-frames in turn (the loop repeated): in Propagate's player go to
the frame with the mouse and press "Fix this frame": the editor opens on that frame prefilled with
the propagated mask; fix it with the click tool (a click, Enter; SAM 2.1 tiny with generated
weights when models/memvos has none) and a brush stroke, close (saves), queue again. That run
must propagate only the span between the neighbouring keyframes (the server's log line, the
progress bar the websocket reports), keep every other frame byte for byte, show the fix on its
frame, and the player must hatch the kept frames and say so in its frame counter. Screenshots of
the first fix: the prefilled editor and the fix (the video passes), the player after its run on
a kept frame. Each run's wall time, the server process's CPU time and Propagate's own time are
printed at the end.
"""
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from check_click_in_comfyui import copy_into_input, ensure_sam2
from check_keyframes_in_comfyui import (EDITOR, JS_EVENTS, JS_LABELS, as_array, drag, editor_settle, fetch_labels, key,
                                        wait_done)
from check_player_in_comfyui import JS_FRAME_NODES, JS_NODES_OF, JS_PLAYER_STATE, VIEWPORT, screenshot, settle
from comfy_page import comfy_page
from comfy_server import ROOT, post_json, run_check

WORKFLOW = ROOT / "examples_workflows" / "memvos_5_long_shot_from_video.json"
PANEL = "window.app.graph.getNodeById({id}).memvosKeyframes.panel.element"
SHOT_WIDTH = 960  # editor screenshots are scaled to this width (docs/ pictures stay small)

# Propagate's progress as the websocket reports it, and when each node started (ms), per run.
JS_PROGRESS = """(id) => { const api = window.comfyAPI.api.api; window.__progress = []; window.__started = [];
  api.addEventListener('progress', (e) => { if (String(e.detail?.node) === String(id)) window.__progress.push([e.detail.value, e.detail.max, performance.now()]); });
  api.addEventListener('executing', (e) => window.__started.push([String(e.detail?.node ?? e.detail), performance.now()]));
  api.addEventListener('execution_success', () => window.__started.push(['done', performance.now()])); }"""

JS_STALE = """async (id) => {
  const p = window.app.graph.getNodeById(id).memvosPlayer; await p.loading; await p.settled();
  const bands = [...p.element.querySelectorAll('.memvos-stale')].map((b) => [Number(b.dataset.frame), Number(b.dataset.count),
    b.getClientRects().length > 0]);
  return {stale: p.manifest?.stale ?? null, bands, counter: p.element.querySelector('.memvos-counter')?.textContent ?? '',
          counterStale: p.element.querySelector('.memvos-counter')?.classList.contains('stale') ?? false,
          frame: p.state.frame, token: p.entry?.masks_token ?? null, numFrames: p.manifest?.numFrames ?? 0};
}"""


JS_SPEC = "(id) => JSON.parse(window.app.graph.getNodeById(id).widgets.find((w) => w.name === 'keyframes').value)"


async def seek(page, prop, frame):
    """The player to ``frame`` with the mouse: a click on the slider there, then the step buttons."""
    player = f"window.app.graph.getNodeById({prop}).memvosPlayer"
    scrub = await page.evaluate_handle(f"() => {player}.element.querySelector('.memvos-scrub')")
    box = await scrub.bounding_box()
    count = await page.evaluate(f"() => {player}.manifest.numFrames")
    await page.mouse.click(box["x"] + box["width"] * (frame + 0.5) / count, box["y"] + box["height"] / 2)
    for _ in range(count):
        now = await page.evaluate(f"() => {player}.state.frame")
        if now == frame:
            return
        await (await page.evaluate_handle(f"() => {player}.element.querySelector('{'.memvos-forward' if now < frame else '.memvos-back'}')")).click()
    raise AssertionError(f"the player did not reach frame {frame}")


def log_tail(path, start):
    """The server log's text from byte ``start`` on, and its length now."""
    text = Path(path).read_bytes()
    return text[start:].decode(errors="replace"), len(text)


def propagate_lines(text):
    return [line.strip() for line in text.splitlines() if "MemVOS Propagate:" in line]


def bars_of(progress):
    """Each progress bar in turn, ``[steps, seconds from its first update to its last]``, from the
    websocket's (value, max, ms) updates."""
    bars, last = [], 0
    for value, top, ms in progress:
        if not bars or top != bars[-1][0] or value < last:
            bars.append([top, ms, ms])
        bars[-1][2], last = ms, value
    return [[top, round((t1 - t0) / 1000, 1)] for top, t0, t1 in bars]


def bar_sizes(progress):
    return [top for top, _ in bars_of(progress)]


def executed_seconds(text):
    found = re.findall(r"Prompt executed in ([0-9.:]+) seconds", text)
    return found[-1] if found else "?"


async def setup_graph(page, args, source):
    """Example 5 with the footage swapped in (Load Video's file, or a Load Frames node in its place),
    internal_size, Propagate's end_frame, an empty keyframe list. -> node ids."""
    await page.evaluate("(wf) => window.app.loadGraphData(wf)", json.loads(WORKFLOW.read_text()))
    await settle(page, 1500)
    ids = {name: (await page.evaluate(JS_NODES_OF, [cls]))[0] for name, cls in
           (("kf", "MemVOSKeyframes"), ("prop", "MemVOSPropagate"), ("video", "LoadVideo"))}
    await page.evaluate("""([ids, video, size, end, frames]) => {
      const g = window.app.graph, byClass = (c) => g._nodes.find((n) => (n.comfyClass ?? n.type) === c);
      const set = (node, name, value) => { const w = node.widgets.find((w) => w.name === name); w.value = value; w.callback?.(value); };
      if (frames) {  // Load Frames in Load Video's place, wired to every input Load Video fed
        const vid = g.getNodeById(ids.video), lf = window.LiteGraph.createNode('MemVOSLoadFrames');
        lf.pos = [vid.pos[0], vid.pos[1]]; g.add(lf);
        set(lf, 'path', frames);
        const targets = (vid.outputs[0].links ?? []).map((l) => g.links[l] ?? g.links.get?.(l)).map((l) => [l.target_id, l.target_slot]);
        g.remove(vid);
        for (const [t, slot] of targets) lf.connect(0, g.getNodeById(t), slot);
      } else {
        set(g.getNodeById(ids.video), 'file', video);
      }
      set(byClass('MemVOSNewSession'), 'internal_size', size);
      set(g.getNodeById(ids.prop), 'end_frame', end);
      const kf = g.getNodeById(ids.kf), w = kf.widgets.find((w) => w.name === 'keyframes');
      const spec = JSON.parse(w.value); spec.keyframes = []; w.value = JSON.stringify(spec);
      kf.memvosKeyframes.panel.refresh();
    }""", [ids, args.video_name, args.internal_size, args.frames - 1, args.frames_folder if source == "frames" else None])
    return ids


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far (None when it is not known)."""
    if not pid:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def queue(page, args, prop_id):
    """Queue Propagate and what feeds it (or the whole workflow); wait. -> {event, detail, wall_s,
    propagate_s (its node's start to the next node's or the end, from the websocket), cpu_s (the
    server process), server_s (its "Prompt executed in"), log (its new lines), progress}."""
    await page.evaluate("() => { window.__progress = []; window.__started = []; window.__kf.done = []; }")
    at = log_tail(args.server_log, 0)[1]
    cpu0, started = cpu_seconds(args.server_pid), time.time()
    if args.whole_graph:
        await page.evaluate("() => window.app.queuePrompt(0)")
    else:
        await page.evaluate("(id) => window.app.queuePrompt(0, 1, [String(id)])", prop_id)
    done = await wait_done(page, args.timeout)
    wall = time.time() - started
    for _ in range(50):  # the server logs the prompt's time just after it reports success
        text = log_tail(args.server_log, at)[0]
        if "Prompt executed in" in text or done[0] != "execution_success":
            break
        await settle(page, 100)
    cpu1 = cpu_seconds(args.server_pid)
    marks = await page.evaluate("() => window.__started")
    mine = next((i for i, (node, _) in enumerate(marks) if node == str(prop_id)), None)
    own = (marks[mine + 1][1] - marks[mine][1]) / 1000 if mine is not None and mine + 1 < len(marks) else None
    return {"event": done[0], "detail": done[1], "wall_s": wall, "propagate_s": own, "server_s": executed_seconds(text),
            "cpu_s": None if cpu0 is None else cpu1 - cpu0, "log": text,
            "progress": await page.evaluate("() => window.__progress")}


def run_text(run):
    """How long a run took, for the report."""
    cpu = "" if run["cpu_s"] is None else f", server CPU {run['cpu_s']:.1f} s"
    own = "?" if run["propagate_s"] is None else f"{run['propagate_s']:.1f}"
    return (f"{run['event']} in {run['wall_s']:.1f} s (server: {run['server_s']} s{cpu}; Propagate {own} s); "
            f"Propagate's bars [steps, s] {bars_of(run['progress'])} in {len(run['progress'])} updates")


def timing_row(mode, name, run):
    return {"pass": mode, "run": name, "wall_s": round(run["wall_s"], 1), "server_s": run["server_s"],
            "cpu_s": None if run["cpu_s"] is None else round(run["cpu_s"], 1),
            "propagate_s": None if run["propagate_s"] is None else round(run["propagate_s"], 1),
            "bars": bars_of(run["progress"])}


async def paint_keyframes(page, report, tag, kf, shot, frames):
    """A brush stroke of object 1 on each of ``frames`` (real mouse), saved. -> {frame: labels}."""
    w, h = shot["width"], shot["height"]
    await (await page.evaluate_handle(f"() => {PANEL.format(id=kf)}.querySelector('.memvos-kf-open')")).click()
    await editor_settle(page, kf)
    await key(page, kf, "1")
    await key(page, kf, "b")
    painted = {}
    for i, f in enumerate(frames):
        await page.evaluate(f"() => {EDITOR.format(id=kf)}.goTo({f})")
        await editor_settle(page, kf)
        x = 0.35 + 0.05 * i
        await drag(page, kf, [(w * x, h * 0.4), (w * (x + 0.1), h * 0.5), (w * (x + 0.15), h * 0.6)])
        painted[f] = as_array(await page.evaluate(JS_LABELS, [kf, f]))
    await key(page, kf, "Control+s")
    await key(page, kf, "Escape")
    spec = await page.evaluate(JS_SPEC, kf)
    report.check(tag + f"brush strokes of object 1 on frames {frames}, saved as keyframes",
                 [k["frame"] for k in spec["keyframes"]] == list(frames) and all((p == 1).sum() > 200 for p in painted.values()),
                 f"{ {f: int((p == 1).sum()) for f, p in painted.items()} } px; list {[(k['frame'], k['objects']) for k in spec['keyframes']]}")
    return painted


async def run_mode(p, report, url, args, vue, source, timings):
    mode = ("vue" if vue else "classic") + ("" if source == "video" else ", Load Frames")
    tag = f"[{mode}] "
    prefix = f"comfyui_{'vue_' if vue else ''}loop_{'' if source == 'video' else 'frames_'}"
    shots = Path(args.shots)
    key_frames = args.keyframes
    end = args.frames
    async with comfy_page(p, url, report, tag, vue, shots / f"failed_loop_{prefix}.png") as page:
        ids = await setup_graph(page, args, source)
        kf, prop = ids["kf"], ids["prop"]
        await page.evaluate(JS_EVENTS)
        await page.evaluate(JS_PROGRESS, prop)
        post_json(url, "/free", {"free_memory": True})  # no record of an earlier pass: the first run is whole
        await settle(page, 1000)

        # 1. Load the shot into the editor, paint the keyframes, run.
        await (await page.evaluate_handle(f"() => {PANEL.format(id=kf)}.querySelector('.memvos-kf-load')")).click()
        done = await wait_done(page, args.timeout)
        shot = await page.evaluate("(id) => window.app.graph.getNodeById(id).memvosShot", kf)
        report.check(tag + "Load frames gives the editor the shot", done[0] == "execution_success" and shot,
                     f"{done[0]}; {shot and (shot['numFrames'], shot['width'], shot['height'])}" + ("" if shot else done[1][:300]))
        painted = await paint_keyframes(page, report, tag, kf, shot, key_frames)
        run = await queue(page, args, prop)
        first = await page.evaluate(JS_STALE, prop)
        state = await page.evaluate(JS_PLAYER_STATE, prop)
        report.check(tag + f"first run: success, the player shows {end} frames, nothing hatched",
                     run["event"] == "execution_success" and first["numFrames"] == end and first["stale"] == []
                     and not first["bands"] and state["drawnFrame"] == state["frame"] and bar_sizes(run["progress"])[:1] == [end],
                     f"{run_text(run)}; {first['numFrames']} frames; log {propagate_lines(run['log'])}"
                     + ("" if run["event"] == "execution_success" else f": {run['detail'][:400]}"))
        timings.append(timing_row(mode, "first (whole range)", run))
        keys_back = {f: await fetch_labels(page, first["token"], f) for f in key_frames}
        report.check(tag + "first run: Propagate's masks on the keyframes are the strokes",
                     all(isinstance(keys_back[f], np.ndarray) and np.array_equal(keys_back[f], painted[f]) for f in key_frames),
                     f"object 1 px on frames {key_frames}: {[int((keys_back[f] == 1).sum()) if isinstance(keys_back[f], np.ndarray) else keys_back[f] for f in key_frames]}")
        loop = {"kf": kf, "prop": prop, "shot": shot, "keyframes": list(key_frames), "end": end, "token": first["token"],
                "mode": mode, "tag": tag, "prefix": prefix, "source": source}
        for i, fix in enumerate(args.fix_frames):
            await fix_and_run_again(page, report, args, loop, fix, i, timings)


def kept_ranges(lo, hi, end):
    """The frames a span run over ``lo..hi`` keeps, as the player's stale ranges."""
    return [r for r in ({"frame": 0, "count": lo}, {"frame": hi + 1, "count": end - hi - 1}) if r["count"] > 0]


async def fix_and_run_again(page, report, args, loop, fix, round_no, timings):
    """Fix this frame from the player (prefilled), fix with a click and a brush stroke, close (saves),
    queue again: only the span between the neighbouring keyframes runs, the rest is kept and hatched."""
    kf, prop, shot, end, tag, prefix = loop["kf"], loop["prop"], loop["shot"], loop["end"], loop["tag"], loop["prefix"]
    shots = Path(args.shots)
    pictures = round_no == 0 and loop["source"] == "video"  # the editor's pictures: once per renderer
    lo = max((f for f in loop["keyframes"] if f < fix), default=0)
    hi = min((f for f in loop["keyframes"] if f > fix), default=end - 1)
    kept = kept_ranges(lo, hi, end)
    sample = sorted({f for r in kept for f in (r["frame"], r["frame"] + r["count"] // 2, r["frame"] + r["count"] - 1)})
    before = {f: await fetch_labels(page, loop["token"], f) for f in sample + [fix]}
    tag = tag + f"fix {round_no + 1} (frame {fix}): "

    # Fix this frame: the player taken to the frame with the mouse, a real click on the button.
    await page.evaluate(JS_FRAME_NODES, [[prop], 1.0])
    await settle(page)
    await seek(page, prop, fix)
    await (await page.evaluate_handle("(id) => window.app.graph.getNodeById(id).memvosPlayer.element.querySelector('.memvos-pick')", prop)).click()
    await editor_settle(page, kf)
    opened = await page.evaluate(f"() => {{ const ed = {EDITOR.format(id=kf)}; return {{open: ed.state.open, frame: ed.state.frame, "
                                 "status: ed.element.querySelector('.memvos-ed-status')?.textContent ?? '', "
                                 f"tentative: !!ed.entries.get({fix})?.tentative}}; }}")
    prefilled = as_array(await page.evaluate(JS_LABELS, [kf, fix]))
    report.check(tag + "the player taken to the frame with the mouse, then a click on Fix this frame opens the editor "
                 "prefilled with the propagated mask", opened["open"] and opened["frame"] == fix
                 and isinstance(before[fix], np.ndarray) and np.array_equal(prefilled, before[fix]) and opened["tentative"],
                 f"{ {k: opened[k] for k in ('open', 'frame', 'tentative')} }; object 1: {int((prefilled == 1).sum())} px; "
                 f"status {opened['status'][:90]!r}")
    if pictures:
        await settle(page, 300)
        report.check(tag + "screenshot: the editor prefilled", True,
                     await screenshot(page, shots / f"{prefix}prefilled.png", width=SHOT_WIDTH))

    # The fix: a click of the click tool (Enter accepts), then a brush stroke; closing saves.
    w, h = shot["width"], shot["height"]
    await key(page, kf, "1")
    await key(page, kf, "c")
    clicked_at = time.time()
    await page.mouse.click(*await page.evaluate(f"([x, y]) => {EDITOR.format(id=kf)}.sourceToClient(x, y)", [w * 0.5, h * 0.5]))
    await page.wait_for_function(f"() => !!{EDITOR.format(id=kf)}.clickTool.prompt()?.masks", timeout=args.timeout * 1000, polling=200)
    click_s = time.time() - clicked_at
    await editor_settle(page, kf)
    await key(page, kf, "Enter")
    accepted = as_array(await page.evaluate(JS_LABELS, [kf, fix]))
    await key(page, kf, "b")
    await drag(page, kf, [(w * 0.1, h * 0.1), (w * 0.2, h * 0.15), (w * 0.3, h * 0.2)])
    fixed = as_array(await page.evaluate(JS_LABELS, [kf, fix]))
    report.check(tag + "a click (Enter accepts its mask) and a brush stroke change object 1 on the frame",
                 not np.array_equal(accepted, prefilled) and (fixed == 1).sum() > (accepted == 1).sum()
                 and set(np.unique(fixed)) <= {0, 1},
                 f"object 1: prefilled {int((prefilled == 1).sum())} px, after the click {int((accepted == 1).sum())} px "
                 f"(click answered in {click_s:.1f} s), after the stroke {int((fixed == 1).sum())} px")
    if pictures:
        await settle(page, 300)
        report.check(tag + "screenshot: after the fix", True, await screenshot(page, shots / f"{prefix}fixed.png", width=SHOT_WIDTH))
    await key(page, kf, "Escape")
    spec = await page.evaluate(JS_SPEC, kf)
    kfix = next((k for k in spec["keyframes"] if k["frame"] == fix), None)
    saved = np.asarray(Image.open(Path(args.base_dir) / "input" / kfix["file"])) if kfix else None
    loop["keyframes"] = sorted(loop["keyframes"] + [fix])
    report.check(tag + "closing saves the frame as a keyframe; the others are kept",
                 sorted(k["frame"] for k in spec["keyframes"]) == loop["keyframes"] and saved is not None
                 and np.array_equal(saved, fixed), json.dumps([(k["frame"], k["file"][-22:], k["objects"]) for k in spec["keyframes"]]))

    # Queue again: only the span runs; the player shows the new result, the kept frames hatched.
    run = await queue(page, args, prop)
    lines = propagate_lines(run["log"])
    want = f"propagated again only frames {lo}..{hi} (rerun = span)"
    report.check(tag + f"run again: the server log says only frames {lo}..{hi} ran again",
                 run["event"] == "execution_success" and any(want in line for line in lines),
                 f"{run_text(run)}; log {lines}" + ("" if run["event"] == "execution_success" else f": {run['detail'][:400]}"))
    bars = bar_sizes(run["progress"])
    report.check(tag + "run again: Propagate's progress bar (websocket) counts the span's frames",
                 bars and bars[0] == hi - lo + 1,
                 f"bars of {bars} steps in {len(run['progress'])} updates (the propagation, then the preview pages; "
                 f"span {lo}..{hi}: {hi - lo + 1} frames)")
    timings.append(timing_row(loop["mode"], f"fix {round_no + 1} (span {lo}..{hi})", run))
    now = await page.evaluate(JS_STALE, prop)
    report.check(tag + "the player marks the kept frames (manifest and hatched bands on the timeline)",
                 now["stale"] == kept and [b[:2] for b in now["bands"]] == [[r["frame"], r["count"]] for r in kept]
                 and all(b[2] for b in now["bands"]) and now["token"] != loop["token"],
                 f"stale {now['stale']}; bands {now['bands']}")
    after = {f: await fetch_labels(page, now["token"], f) for f in sample + [fix]}
    same = [f for f in sample if isinstance(after[f], np.ndarray) and np.array_equal(after[f], before[f])]
    report.check(tag + "the kept frames are the last run's byte for byte; the fixed frame is the fix",
                 same == sample and isinstance(after[fix], np.ndarray) and np.array_equal(after[fix], fixed),
                 f"equal on {same} of {sample}; frame {fix}: object 1 "
                 f"{int((after[fix] == 1).sum()) if isinstance(after[fix], np.ndarray) else after[fix]} px")
    loop["token"] = now["token"]
    shown = kept[0]["frame"] + kept[0]["count"] // 2
    await page.evaluate(JS_FRAME_NODES, [[prop], 1.0])
    await settle(page)
    await seek(page, prop, fix)
    at_fix = await page.evaluate(JS_STALE, prop)
    await seek(page, prop, shown)
    at_kept = await page.evaluate(JS_STALE, prop)
    state = await page.evaluate(JS_PLAYER_STATE, prop)
    report.check(tag + "the frame counter says which frames are from before the change",
                 "from before the latest change" in at_kept["counter"] and at_kept["counterStale"]
                 and "from before" not in at_fix["counter"] and not at_fix["counterStale"]
                 and state["drawnFrame"] == shown and state["canvasStd"] > 5,
                 f"frame {fix}: {at_fix['counter']!r}; frame {shown}: {at_kept['counter']!r}")
    if round_no == 0:
        box = await page.evaluate(JS_FRAME_NODES, [[prop], 1.0])
        await page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)
        await settle(page)
        report.check(tag + "screenshot: the player after the run, on a kept (hatched) frame", True,
                     await screenshot(page, shots / f"{prefix}player.png", box))


async def run_browser(report, url, args):
    from playwright.async_api import async_playwright
    if not args.server_log:
        raise SystemExit("--server-log is needed with --url: the check reads which frames Propagate ran")
    passes = [(False, "video")] * (not args.only_frames) + [(True, "video")] * (not (args.no_vue or args.only_frames))
    passes += [(False, "frames")] * bool(args.frames_source or args.only_frames)
    timings = []
    async with async_playwright() as p:
        for vue, source in passes:
            try:
                await run_mode(p, report, url, args, vue, source, timings)
            except Exception as exc:  # report and go on with the next pass
                report.check(f"[{'vue' if vue else 'classic'}, {source}] ran to the end", False, f"{type(exc).__name__}: {str(exc)[:800]}")
    print("\nruns: queue to done as the page saw it | the server's 'Prompt executed in' | the server process's CPU "
          "| Propagate's node (websocket) | its progress bars [steps, s]")
    for t in timings:
        print(f"{t['pass']:>22} | {t['run']:>28} | {t['wall_s']:>6} s | server {t['server_s']:>6} s | CPU {t['cpu_s']} s "
              f"| Propagate {t['propagate_s']} s | bars {t['bars']}")
    if args.timings_json:
        Path(args.timings_json).write_text(json.dumps(timings, indent=1))


def add_arguments(parser):
    parser.add_argument("--video", required=True, help="footage (e.g. 854x480); its first --frames frames run")
    parser.add_argument("--frames", type=int, default=48, help="frames Propagate runs over (its end_frame + 1)")
    parser.add_argument("--keyframes", type=int, nargs="+", default=[0, 20, 40], help="frames painted first")
    parser.add_argument("--fix-frames", type=int, nargs="+", default=[30, 10], help="the frames fixed from the player, "
                        "one after the other, each followed by a run")
    parser.add_argument("--whole-graph", action="store_true", help="queue the whole example (Refine, Composite, Save "
                        "Masks too), not just Propagate and what feeds it")
    parser.add_argument("--frames-source", action="store_true", help="a third pass with MemVOS Load Frames (a folder)")
    parser.add_argument("--only-frames", action="store_true", help="only the Load Frames pass")
    parser.add_argument("--timings-json", help="write the runs' timings here")


def write_frames_folder(video, folder, count):
    """The first ``count`` frames of ``video`` as PNGs in ``folder`` (once)."""
    import av
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == count:
        return
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == count:
                break
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(folder / f"frame_{i:05d}.png")


def main():
    def browser(report, url, args):
        ensure_sam2(args.base_dir)
        args.video_name = copy_into_input(args.base_dir, args.video)
        args.frames_folder = f"{Path(args.video).stem}_{args.frames}_frames"
        if args.frames_source or args.only_frames:
            write_frames_folder(Path(args.video), Path(args.base_dir) / "input" / args.frames_folder, args.frames)
        return run_browser(report, url, args)
    return run_check(__doc__, browser, "/tmp/memvos_loop/base", add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
