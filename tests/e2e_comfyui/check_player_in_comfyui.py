"""Check the preview player (web/) in a real ComfyUI frontend, in headless Chromium (run by hand).

Not a pytest test (the name keeps pytest from collecting it) and never run in CI: it needs a full
ComfyUI install with its frontend package, and it queues a real workflow.

    # against a ComfyUI that is already running with this pack in custom_nodes:
    python3 tests/e2e_comfyui/check_player_in_comfyui.py --url http://127.0.0.1:8188 \
        [--server-log comfy.log] [--shots docs]
    # or let the script set up a base directory, start ComfyUI on a free loopback port, stop it after:
    python3 tests/e2e_comfyui/check_player_in_comfyui.py --comfyui /path/to/ComfyUI \
        --python /path/to/venv/bin/python --base-dir /tmp/memvos_fe/base [--shots docs]

What it does, for the classic canvas and then (unless --no-vue) for the Vue "Nodes 2.0" renderer:
load examples_workflows/memvos_1_one_keyframe_overlay.json through ``app.loadGraphData``, check the
player's empty state, queue the workflow (internal_size lowered to --internal-size so it is quick
on a CPU), check the player got the preview, then drive it with real mouse clicks (play/pause,
scrub, step, object toggle, timeline mark, "Fix this frame") and take screenshots. Prints one
line per check and exits 1 if any failed; --json writes the results.
"""
import json
import sys
import time
from pathlib import Path

from comfy_server import EXTENSION_PATH, ROOT, post_json, run_check

WORKFLOW = ROOT / "examples_workflows" / "memvos_1_one_keyframe_overlay.json"
PLAYER_TYPES = ("MemVOSPropagate", "MemVOSComposite")
GRAPH_SHOT_TYPES = ("MemVOSKeyframes",) + PLAYER_TYPES
HINT_START = "No preview yet"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


# ----------------------------------------------------------------------------- browser

JS_NODES_OF = """(types) => window.app.graph._nodes.filter((n) => types.includes(n.comfyClass ?? n.type)).map((n) => n.id)"""

JS_PLAYER_STATE = """async (id) => {
  const node = window.app.graph.getNodeById(id);
  const p = node?.memvosPlayer;
  if (!p) return null;
  await p.loading; await p.settled();
  const canvas = p.element.querySelector('canvas.memvos-view');
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, sq = 0, hash = 0;
  for (let i = 0; i < px.length; i += 4) { const v = px[i] + px[i + 1] + px[i + 2]; sum += v; sq += v * v; hash = (hash * 31 + v) | 0; }
  const n = px.length / 4, mean = sum / n;
  const text = (sel) => { const e = p.element.querySelector(sel); return e && !e.hidden ? e.textContent : ''; };
  const r = p.element.getBoundingClientRect();
  return {
    inDom: document.body.contains(p.element), rect: [r.x, r.y, r.width, r.height],
    numFrames: p.manifest?.numFrames ?? 0, fps: p.manifest?.fps ?? null, tile: p.manifest?.tile ?? null,
    objects: (p.manifest?.objects ?? []).map((o) => o.id), frame: p.state.frame, playing: p.state.playing,
    visible: Object.fromEntries(Object.entries(p.state.objects).map(([k, v]) => [k, v.visible])),
    drawnFrame: p.drawnFrame, renders: p.renders, canvasStd: Math.sqrt(Math.max(0, sq / n - mean * mean)), canvasHash: hash,
    hint: text('.memvos-hint'), error: text('.memvos-error'), info: text('.memvos-info'), status: text('.memvos-status'),
    controlsDisabled: p.element.querySelector('.memvos-play').disabled, marks: p.element.querySelectorAll('.memvos-marker').length,
  };
}"""

# Graph coordinates -> screen: (pos + offset) * scale. Puts the given nodes (all when empty) in view,
# clear of the side bar on the left and the tab bar and run button at the top, which overlay the canvas.
JS_FRAME_NODES = """([ids, maxScale]) => {
  const app = window.app, ds = app.canvas.ds;
  const nodes = ids.length ? ids.map((id) => app.graph.getNodeById(id)) : app.graph._nodes;
  const title = 30, left = 80, top = 100, pad = 20;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of nodes) { x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]); }
  const w = app.canvas.canvas.clientWidth, h = app.canvas.canvas.clientHeight;
  const scale = Math.min(maxScale, (w - left - pad) / (x1 - x0), (h - top - pad) / (y1 - y0));
  ds.scale = scale;
  ds.offset[0] = left / scale - x0; ds.offset[1] = top / scale - y0;
  app.canvas.setDirty(true, true); app.canvas.draw(true, true);
  const box = app.canvas.canvas.getBoundingClientRect();
  return [box.x + left, box.y + top, (x1 - x0) * scale, (y1 - y0) * scale];
}"""


async def settle(page, ms=800):
    await page.wait_for_timeout(ms)


async def screenshot(page, path, clip=None, width=None):
    """A PNG of the page (or ``clip``), scaled down to ``width`` pixels wide if given, 256 colours."""
    kwargs = {"path": str(path)}
    if clip:
        x, y, w, h = clip
        kwargs["clip"] = {"x": max(0, x - 6), "y": max(0, y - 6), "width": min(w + 12, VIEWPORT["width"]),
                          "height": min(h + 12, VIEWPORT["height"])}
    await page.screenshot(**kwargs)
    try:  # keep committed screenshots small
        from PIL import Image
        image = Image.open(path).convert("RGB")
        if width and image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        image.quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)
    except ImportError:
        pass
    return f"{path} ({Path(path).stat().st_size // 1024} KiB)"


async def control(page, node_id, selector):
    return await page.evaluate_handle(
        "([id, sel]) => window.app.graph.getNodeById(id).memvosPlayer.element.querySelector(sel)", [node_id, selector])


async def run_mode(p, report, url, args, vue):
    mode = "vue" if vue else "classic"
    tag = f"[{mode}] "
    browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = await browser.new_page(viewport=VIEWPORT)
    console, ours_loaded = [], []
    page.on("console", lambda m: console.append((m.type, m.text, (m.location or {}).get("url", ""))))
    page.on("pageerror", lambda e: console.append(("pageerror", str(e), "")))
    page.on("response", lambda r: ours_loaded.append((r.url, r.status)) if EXTENSION_PATH in r.url else None)
    try:
        await page.goto(url + "/", wait_until="networkidle")
        await page.wait_for_function("() => window.app?.graph && window.app.extensionManager?.setting", timeout=60000)
        await page.keyboard.press("Escape")  # the templates dialog of a first start
        app_info = await page.evaluate("""async (vue) => {
          const s = window.app.extensionManager.setting;
          await s.set('Comfy.VueNodes.Enabled', vue); await s.set('Comfy.Minimap.Visible', false);
          return {frontend: window.__COMFYUI_FRONTEND_VERSION__ ?? null, sameApp: window.comfyAPI?.app?.app === window.app,
                  extensions: window.app.extensions.map((e) => e.name).filter((n) => /memvos/i.test(n)),
                  vue: s.get('Comfy.VueNodes.Enabled')};
        }""", vue)
        report.check(tag + "frontend and extension registered", sorted(app_info["extensions"]) == ["memvos.keyframes", "memvos.player"]
                     and app_info["vue"] == vue, json.dumps(app_info))
        bad = [u for u, status in ours_loaded if status >= 400]
        report.check(tag + "extension modules served", ours_loaded and not bad,
                     f"{len(ours_loaded)} requests, failed: {bad}")

        workflow = json.loads(WORKFLOW.read_text())
        await page.evaluate("(wf) => window.app.loadGraphData(wf)", workflow)
        await settle(page, 1500)
        ids = await page.evaluate(JS_NODES_OF, list(PLAYER_TYPES))
        report.check(tag + "workflow loaded, player nodes found", len(ids) == 2, f"node ids {ids}")
        for node_id in ids:
            s = await page.evaluate(JS_PLAYER_STATE, node_id)
            report.check(tag + f"node {node_id}: empty player with hint", s and s["inDom"] and s["hint"].startswith(HINT_START)
                         and s["controlsDisabled"] and not s["error"], s and f"hint={s['hint'][:40]!r}")
        saved = await page.evaluate("""async (ids) => {
          const wf = window.app.graph.serialize(); const api = (await window.app.graphToPrompt()).output;
          return {values: ids.map((id) => wf.nodes.find((n) => n.id === id).widgets_values.length),
                  widgets: ids.map((id) => window.app.graph.getNodeById(id).widgets.filter((w) => w.name !== 'memvos_player').length),
                  inPrompt: ids.filter((id) => 'memvos_player' in (api[String(id)]?.inputs ?? {}))};
        }""", ids)
        report.check(tag + "player not serialised into workflow or prompt",
                     saved["values"] == saved["widgets"] and not saved["inPrompt"], json.dumps(saved))
        # Annotation -> Propagate -> Composite; all 13 nodes would need a zoom under 0.6, where the
        # classic canvas draws nodes without text or DOM widgets.
        await page.evaluate(JS_FRAME_NODES, [await page.evaluate(JS_NODES_OF, list(GRAPH_SHOT_TYPES)), 1.0])
        await settle(page)
        report.check(tag + "screenshot of the loaded graph", True,
                     await screenshot(page, Path(args.shots) / f"comfyui_{'vue_' if vue else ''}workflow1.png"))

        await page.evaluate("""(size) => {
          const api = window.comfyAPI.api.api; window.__memvosEvents = [];
          window.__memvosCached = [];
          api.addEventListener('execution_cached', (e) => window.__memvosCached.push(...(e.detail?.nodes ?? [])));
          for (const ev of ['execution_success', 'execution_error', 'execution_interrupted'])
            api.addEventListener(ev, (e) => window.__memvosEvents.push([ev, JSON.stringify(e.detail).slice(0, 2000)]));
          const session = window.app.graph._nodes.find((n) => (n.comfyClass ?? n.type) === 'MemVOSNewSession');
          session.widgets.find((w) => w.name === 'internal_size').value = size;
        }""", args.internal_size)
        post_json(url, "/free", {"free_memory": True})  # empty the server's cache: a real run every time
        await settle(page, 1500)
        started = time.time()
        await page.evaluate("() => window.app.queuePrompt(0)")
        await page.wait_for_function("() => window.__memvosEvents.length > 0", timeout=args.timeout * 1000, polling=500)
        events = await page.evaluate("() => window.__memvosEvents")
        cached = await page.evaluate("() => window.__memvosCached")
        report.check(tag + "workflow ran", events[0][0] == "execution_success",
                     f"{events[0][0]} after {time.time() - started:.1f} s (internal_size {args.internal_size}, "
                     f"{len(cached)} nodes from the server's cache)"
                     + ("" if events[0][0] == "execution_success" else f": {events[0][1]}"))
        for node_id in ids:
            s = await page.evaluate(JS_PLAYER_STATE, node_id)
            report.check(tag + f"node {node_id}: preview received and drawn",
                         s["numFrames"] > 0 and s["drawnFrame"] == s["frame"] and s["canvasStd"] > 5 and not s["hint"]
                         and not s["error"] and not s["controlsDisabled"],
                         f"{s['numFrames']} frames at {s['fps']} fps, tile {s['tile']}, objects {s['objects']}, "
                         f"canvas std {s['canvasStd']:.1f}, marks {s['marks']}")
        try:
            await drive_player(page, report, tag, ids[0], args, vue)
        except Exception as exc:  # a control that could not be clicked: report it, go on with the next mode
            report.check(tag + "driving the player", False, f"{type(exc).__name__}: {str(exc)[:600]}")
            await page.screenshot(path=str(Path(args.shots) / f"failed_{mode}.png"))
        await reload_and_reopen(page, report, tag, ids)
    finally:
        ours = [c for c in console if c[0] in ("error", "pageerror", "warning")
                and ("memvos" in c[1].lower() or "memvos" in c[2].lower())]
        report.check(tag + "no console errors or warnings from the extension", not ours, json.dumps(ours)[:400])
        others = sorted({f"{c[1][:90]} {c[2][-60:]}" for c in console if c[0] in ("error", "pageerror") and c not in ours})
        for line in others:
            print(f"note  {tag}console error not from us: {line}")
        await browser.close()


async def drive_player(page, report, tag, node_id, args, vue):
    """Real clicks on the player of one node, brought into view at scale 1."""
    await page.evaluate(JS_FRAME_NODES, [[node_id], 1.0])
    await settle(page)
    state = lambda: page.evaluate(JS_PLAYER_STATE, node_id)  # noqa: E731
    before = await state()

    await (await control(page, node_id, ".memvos-play")).click()
    await page.wait_for_timeout(1200)
    playing = await state()
    await (await control(page, node_id, ".memvos-play")).click()
    paused = await state()
    report.check(tag + "play then pause (clicks)", playing["playing"] and not paused["playing"]
                 and playing["renders"] > before["renders"] and playing["frame"] != before["frame"],
                 f"frame {before['frame']} -> {playing['frame']} after 1.2 s, renders {before['renders']} -> {playing['renders']}")

    scrub = await control(page, node_id, ".memvos-scrub")
    box = await scrub.bounding_box()
    await page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    scrubbed = await state()
    want = round(0.75 * (scrubbed["numFrames"] - 1))
    report.check(tag + "scrub (click at 3/4 of the slider)", abs(scrubbed["frame"] - want) <= 1
                 and scrubbed["drawnFrame"] == scrubbed["frame"], f"frame {scrubbed['frame']}, expected about {want}")

    await (await control(page, node_id, ".memvos-forward")).click()
    stepped = await state()
    report.check(tag + "step forward", stepped["frame"] == (scrubbed["frame"] + 1) % stepped["numFrames"],
                 f"frame {scrubbed['frame']} -> {stepped['frame']}")

    last = str(stepped["objects"][-1])
    await (await control(page, node_id, f'input.memvos-visible[data-object="{last}"]')).click()
    hidden = await state()
    report.check(tag + f"toggle object {last} off", hidden["visible"][last] is False
                 and hidden["canvasHash"] != stepped["canvasHash"], f"visible {hidden['visible']}, canvas changed")
    await (await control(page, node_id, f'input.memvos-visible[data-object="{last}"]')).click()
    shown = await state()
    report.check(tag + f"toggle object {last} on again", shown["visible"][last] is True
                 and shown["canvasHash"] == stepped["canvasHash"], f"visible {shown['visible']}")

    await (await control(page, node_id, ".memvos-marker")).click()
    marked = await state()
    report.check(tag + "click a timeline mark", marked["info"].startswith("Frame"), repr(marked["info"]))

    await (await control(page, node_id, ".memvos-forward")).click()
    picked_frame = (await state())["frame"]
    await (await control(page, node_id, ".memvos-pick")).click()
    picked = await state()
    editor = await page.evaluate("""async () => {
      const n = window.app.graph._nodes.find((n) => (n.comfyClass ?? n.type) === 'MemVOSKeyframes');
      const e = n?.memvosKeyframes?.editor; if (!e) return null; await e.settled();
      return {open: e.state.open, frame: e.state.frame, keyframes: n.widgets.find((w) => w.name === 'keyframes').value};
    }""")
    report.check(tag + "'Fix this frame' opens the upstream Keyframes editor on that frame",
                 editor and editor["open"] and editor["frame"] == picked_frame, f"{picked['status']!r}; editor {editor and {k: editor[k] for k in ('open', 'frame')}}")
    await page.keyboard.press("Escape")
    await settle(page, 500)
    closed = await page.evaluate("""() => window.app.graph._nodes.find((n) => (n.comfyClass ?? n.type) === 'MemVOSKeyframes')
      .memvosKeyframes.editor.state.open""")
    report.check(tag + "Esc closes the editor; nothing painted, nothing saved", not closed
                 and editor["keyframes"] == await page.evaluate("""() => window.app.graph._nodes.find((n) =>
                   (n.comfyClass ?? n.type) === 'MemVOSKeyframes').widgets.find((w) => w.name === 'keyframes').value"""))

    await (await control(page, node_id, ".memvos-back")).click()
    box = await page.evaluate(JS_FRAME_NODES, [[node_id], 1.0])
    await settle(page)
    name = f"comfyui_{'vue_' if vue else ''}player.png"
    report.check(tag + "screenshot of the player node", True, await screenshot(page, Path(args.shots) / name, box))


# Reopening a finished job as the queue panel does (TaskItemImpl.loadWorkflow, which calls the
# extensions' onNodeOutputsUpdated). The store is reached through Pinia: frontend internals, not API.
JS_REOPEN_LAST_JOB = """async () => {
  const host = document.querySelector('#vue-app') ?? [...document.querySelectorAll('body *')].find((e) => e.__vue_app__);
  const queue = host?.__vue_app__?.config.globalProperties.$pinia?._s.get('queue');
  if (!queue) return 'no queue store';
  await queue.update?.();
  const task = (queue.historyTasks ?? []).find((t) => Object.values(t.outputs ?? {}).some((o) => o.memvos_preview));
  if (!task) return 'no finished job with a preview in the history';
  await task.loadWorkflow(window.app);
  return 'reopened ' + task.promptId;
}"""


async def reload_and_reopen(page, report, tag, ids):
    await page.reload(wait_until="networkidle")
    await page.wait_for_function("() => window.app?.graph?._nodes?.length > 0", timeout=60000)
    await page.keyboard.press("Escape")
    await settle(page, 1500)
    after = await page.evaluate(JS_PLAYER_STATE, ids[0])
    # Informational: the frontend restores the workflow after a reload but not the run's outputs.
    report.check(tag + "after a page reload (outputs are not restored by the frontend)", after is not None
                 and not after["error"], f"player shows {after['numFrames']} frames, hint {after['hint'][:30]!r}")
    how = await page.evaluate(JS_REOPEN_LAST_JOB)
    await settle(page, 1500)
    for node_id in ids:
        s = await page.evaluate(JS_PLAYER_STATE, node_id)
        report.check(tag + f"node {node_id}: preview back after reopening the job from the queue history",
                     s and s["numFrames"] > 0 and s["drawnFrame"] == s["frame"] and s["canvasStd"] > 5,
                     f"{how}; {s and s['numFrames']} frames")


async def run_browser(report, url, args):
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        for vue in (False,) if args.no_vue else (False, True):
            await run_mode(p, report, url, args, vue)


def main():
    return run_check(__doc__, run_browser, "/tmp/memvos_fe/base")


if __name__ == "__main__":
    sys.exit(main())
