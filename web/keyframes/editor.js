// The keyframe editor: a window over the whole page (so it behaves the same in the classic canvas
// and in the Vue "Nodes 2.0" renderer) where the artist paints each object's mask on any frame of
// the shot at the source size. Edits stay in memory until saved; saving uploads one indexed PNG
// per changed keyframe and writes the node's keyframe list. State is in `editor.state` and the
// frames being edited in `editor.entries`, readable by tests and other extensions.
import { createClickTool } from "./click_tool.js";
import { buildEditorDom } from "./editor_dom.js";
import { History } from "./history.js";
import { actionFor } from "./keys.js";
import { fillPolygon, floodFill, idsIn, rectDiffers, replaceValue, resizeLabels, strokeSegment, unionRect } from "./raster.js";
import { ensureObject, nextObjectId, objectColor, parseSpec, serializeSpec } from "./spec.js";
import { createView } from "./view.js";

const FRAME_CACHE = 6; // decoded source frames kept in the browser
const CLEAN_ENTRIES = 8; // unedited label maps kept (edited ones stay until saved)
const TOOLS = ["brush", "eraser", "fill", "lasso", "click"];
const SCRUB_PAUSE_MS = 40;

const errorText = (err) => err?.message ?? String(err);

// host: {server, title(), readSpec(), writeSpec(text), shot(), loadFrames(), context(), runError(),
//   misfit(), misfitDropped()}
//   runError(): the last run's error of this node, or null; misfit(): {frames, message} of the
//   keyframes painted on other footage (the node refused them), or null
//   shot(): {token, numFrames, width, height, keyframes: [{frame, objects, sources}]} or null
//   context(): {suggestions: [{frame, lines}], masksToken(frame)} from the players downstream
export function createEditor(host) {
  const state = { open: false, frame: 0, activeId: 1, tool: "brush", size: 20, overlay: true, opacity: 0.55,
    reference: true, help: false, saving: false };
  const entries = new Map(); // frame -> {labels: {width, height, data}, objects: Set, dirty}
  const frameCache = new Map(); // frame -> Promise<ImageBitmap>, least recently used first
  const history = new History();
  const editor = { state, entries, history, element: null, open, openAt, close, save, goTo, setShot, isDirty,
    settled, act: run, current: () => current, sourceToClient, showRunError };
  let spec = parseSpec("").spec;
  let specDirty = false;
  let parts = null, view = null, current = null, reference = null, fixToken = null;
  let serial = 0, pending = Promise.resolve(), drawQueued = false;
  let pointer = null, cursor = null, lasso = null, spaceDown = false, savingPromise = null, closing = null;
  const clickTool = createClickTool({
    get server() { return host.server; }, token: () => host.shot()?.token, frame: () => state.frame,
    labels: () => current.labels, objectId: () => state.activeId, status: (text) => setStatus(text),
    preview: () => { view.paintLabels(current.labels, colours(), full()); redraw(); },
  });
  editor.clickTool = clickTool;

  // Resolves once the frame being loaded, a save and a close under way are done.
  async function settled() {
    await pending;
    await savingPromise?.catch(() => {});
    await closing;
  }

  // ------------------------------------------------------------------ opening and closing

  function build() {
    const on = {
      tool: (t) => setTool(t), sizeInput: (v) => setSize(v), overlay: (v) => { state.overlay = v; redraw(); },
      opacity: (v) => { state.opacity = v; redraw(); }, reference: (v) => { state.reference = v; redraw(); },
      undo: () => run(["undo"]), redo: () => run(["redo"]), prefill: () => run(["prefill"]),
      clearObject: () => run(["clearObject"]), removeKeyframe: () => run(["removeKeyframe"]), fit: () => run(["fit"]),
      help: () => run(["help"]), save: () => run(["save"]), close: () => run(["close"]), load: () => loadFrames(),
      drop: () => run(["dropFrames", host.misfit?.()?.frames ?? []]),
      newObject: () => run(["newObject"]), seek: (f) => goTo(f), back: () => run(["step", -1]), forward: () => run(["step", 1]),
    };
    const dom = buildEditorDom(on);
    editor.element = dom.element;
    dom.element.memvosEditor = editor;
    parts = dom.parts;
    view = createView(parts.canvas);
    const canvas = parts.canvas;
    canvas.addEventListener("pointerdown", onPointerDown);
    canvas.addEventListener("pointermove", onPointerMove);
    canvas.addEventListener("pointerup", onPointerUp);
    canvas.addEventListener("pointercancel", onPointerUp);
    canvas.addEventListener("pointerleave", () => { cursor = null; redraw(); });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener("wheel", onWheel, { passive: false });
    new ResizeObserver(() => redraw()).observe(canvas);
  }

  // Open at `frame` (default: the first keyframe); the page keeps running underneath.
  async function open(frame = null) {
    if (!editor.element) build();
    if (!state.open) {
      if (!isDirty()) {
        const parsed = parseSpec(host.readSpec());
        spec = parsed.spec;
        setMessage(parts.error, parsed.problem ?? "");
      }
      state.activeId = spec.objects[0]?.id ?? state.activeId;
      document.body.append(editor.element);
      window.addEventListener("keydown", onKey, true);
      window.addEventListener("keyup", onKey, true);
      state.open = true;
      parts.title.textContent = `Keyframes \u2014 ${host.title()}`;
      setTool(state.tool);
      setSize(state.size);
      parts.overlay.checked = state.overlay;
      parts.reference.checked = state.reference;
      requestAnimationFrame(() => { view.fit(); redraw(); });
      showRunError(host.runError?.() ?? null);
    }
    const start = frame ?? [...spec.keyframes.keys()].sort((a, b) => a - b)[0] ?? state.frame;
    return goTo(start);
  }

  // "Fix this frame" from a player: open at `frame`; when that frame has no painted keyframe
  // yet, show the propagated masks (masksToken) ready to correct. They become a keyframe of that
  // frame (and only of that frame) once the artist changes them; closing untouched adds nothing.
  async function openAt(frame, { masksToken = null, prefill = true } = {}) {
    fixToken = masksToken;
    await open(frame);
    const entry = entries.get(frame);
    if (prefill && reference && current === entry && state.frame === frame && !spec.keyframes.has(frame)
        && !entry.dirty && entry.objects.size === 0) {
      run(["prefill"]);
      entry.dirty = false;
      entry.tentative = true;
      updateSide();
      setStatus(`Frame ${frame} shows the propagated masks: correct them and this frame becomes a keyframe ` +
        "(P keeps them as they are; closing untouched adds nothing).");
    }
  }

  function close() {
    closing ??= closeNow().finally(() => { closing = null; });
    return closing;
  }

  async function closeNow() {
    if (!state.open) return true;
    try {
      await save();
    } catch {
      return false; // the error is shown; the window stays open with the edits
    }
    state.open = false;
    pointer = null;
    fixToken = null;
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("keyup", onKey, true);
    editor.element.remove();
    host.closed?.();
    return true;
  }

  function isDirty() {
    return specDirty || [...entries.values()].some((e) => e.dirty);
  }

  // Where source pixel (x, y) is on the screen (for tests and tools driving the editor).
  function sourceToClient(x, y) {
    const box = parts.canvas.getBoundingClientRect();
    return [box.left + view.ox + x * view.scale, box.top + view.oy + y * view.scale];
  }

  // ------------------------------------------------------------------ the shot and its frames

  function dims() {
    const shot = host.shot();
    return shot ? [shot.width, shot.height] : null;
  }

  // A new run of the node: new frames token, maybe another shot.
  function setShot() {
    if (view) view.frame = null; // its bitmap is closed below: never drawn again
    for (const promise of frameCache.values()) promise.then((b) => b.close?.(), () => {});
    frameCache.clear();
    const size = dims();
    for (const [frame, entry] of [...entries]) {
      if (!size || entry.labels.width !== size[0] || entry.labels.height !== size[1]) entries.delete(frame);
    }
    // "Running this node to load the shot..." has been answered (a failed run says so in showRunError).
    const shot = host.shot();
    if (parts && shot && parts.status.textContent.startsWith("Running this node")) {
      setStatus(`Shot loaded: ${shot.numFrames} frames, ${shot.width}\u00D7${shot.height}.`);
    }
    if (state.open) goTo(state.frame);
  }

  function frameBitmap(frame) {
    const shot = host.shot();
    let promise = frameCache.get(frame);
    if (promise) {
      frameCache.delete(frame);
    } else {
      promise = host.server.frame(shot.token, frame);
      promise.catch(() => frameCache.delete(frame));
    }
    frameCache.set(frame, promise);
    while (frameCache.size > FRAME_CACHE) {
      const [oldest, old] = frameCache.entries().next().value;
      frameCache.delete(oldest);
      old.then((b) => { if (view?.frame !== b) b.close?.(); }, () => {});
    }
    return promise;
  }

  async function entryFor(frame) {
    let entry = entries.get(frame);
    if (entry) return entry;
    const [width, height] = dims();
    const saved = spec.keyframes.get(frame);
    if (saved) {
      const file = await host.server.keyframe(saved.file);
      let labels = { width: file.width, height: file.height, data: file.labels };
      if (file.width !== width || file.height !== height) {
        labels = resizeLabels(labels, width, height);
        setStatus(`Keyframe file ${saved.file} is ${file.width}x${file.height}; shown resized to the shot's ${width}x${height}.`);
      }
      entry = { labels, objects: new Set(saved.objects), dirty: false };
    } else {
      entry = { labels: { width, height, data: new Uint8Array(width * height) }, objects: new Set(), dirty: false };
    }
    entries.set(frame, entry);
    const clean = [...entries].filter(([f, e]) => !e.dirty && f !== frame);
    for (const [f] of clean.slice(0, Math.max(0, clean.length - CLEAN_ENTRIES))) entries.delete(f);
    return entry;
  }

  async function loadFrames() {
    setMessage(parts.status, "Running this node to load the shot\u2026");
    try {
      await host.loadFrames();
    } catch (err) {
      setMessage(parts.error, `Could not queue the node: ${errorText(err)}`);
    }
  }

  // ------------------------------------------------------------------ frames

  function frameCount() {
    return host.shot()?.numFrames ?? 0;
  }

  function goTo(frame) {
    clickTool.cancel();
    const shot = host.shot();
    const count = frameCount();
    const wanted = Math.max(0, Math.round(Number(frame) || 0));
    state.frame = shot ? Math.min(count - 1, wanted) : wanted; // without the shot, keep the frame asked for
    const mine = ++serial;
    current = null;
    reference = null;
    view.setGhost(null);
    updateSide(); // without the shot too: the objects and keyframes of the list (a template's)
    if (!shot) {
      showMessage(host.runError?.() ?? "The shot is not loaded yet: run this node (or the workflow) once, and its "
        + "frames appear here.");
      view.frame = null;
      redraw();
      pending = Promise.resolve();
      return pending;
    }
    view.setSize(shot.width, shot.height);
    const frameNow = state.frame;
    pending = (async () => {
      // Scrubbing a long shot asks for many frames in a row: only the one it stops on is fetched.
      await new Promise((resolve) => setTimeout(resolve, SCRUB_PAUSE_MS));
      if (mine !== serial) return;
      let entry;
      try {
        entry = await entryFor(frameNow);
      } catch (err) {
        if (mine === serial) setMessage(parts.error, errorText(err));
        return;
      }
      if (mine !== serial) return;
      current = entry;
      view.paintLabels(entry.labels, colours());
      updateSide();
      redraw();
      try {
        view.frame = await frameBitmap(frameNow);
        if (mine === serial) showMessage("");
      } catch (err) {
        if (mine !== serial) return;
        view.frame = null;
        showMessage(`${errorText(err)} Painting still works; the frame shows again after a run.`);
      }
      if (mine !== serial) return;
      redraw();
      await loadReference(frameNow, mine);
    })();
    return pending;
  }

  // The outline shown under the painting: the node's input keyframe on this frame if there is one,
  // else the propagated masks of the run downstream (or the one "fix this frame" came from).
  async function loadReference(frame, mine) {
    const shot = host.shot();
    const fromInputs = shot.keyframes?.find((k) => k.frame === frame && Object.values(k.sources ?? {}).some((s) => s !== "painted"));
    const token = fromInputs ? shot.token : host.context().masksToken(frame) ?? fixToken;
    if (!token) return;
    try {
      const got = await host.server.labels(token, frame);
      if (mine !== serial) return;
      let labels = { width: got.width, height: got.height, data: got.labels };
      if (got.width !== shot.width || got.height !== shot.height) labels = resizeLabels(labels, shot.width, shot.height);
      reference = { labels, source: fromInputs ? "the keyframe from the node's inputs" : "the propagated masks" };
      view.setGhost(labels, colours());
      updateSide();
      redraw();
    } catch (err) {
      if (mine === serial && err.status !== 404) setStatus(`No reference for this frame: ${errorText(err)}`);
    }
  }

  // ------------------------------------------------------------------ editing

  function colours() {
    const map = new Map();
    const ids = new Set([...spec.objects.map((o) => o.id), ...(current ? idsIn(current.labels.data) : []),
      ...(reference ? idsIn(reference.labels.data) : [])]);
    for (const id of ids) map.set(id, objectColor(spec, id));
    return map;
  }

  function edit(action) {
    if (!current) return false;
    const started = history.begin(current.labels, current.objects);
    const rect = action(current.labels, current.objects, started);
    if (!history.commit(state.frame, current.labels, current.objects, started, rect)) return false;
    afterEdit(rect);
    return true;
  }

  function afterEdit(rect) {
    current.dirty = true;
    current.tentative = false;
    for (const id of current.objects) if (!spec.objects.some((o) => o.id === id)) { ensureObject(spec, id); specDirty = true; }
    view.paintLabels(current.labels, colours(), rect);
    updateSide();
    redraw();
  }

  // A drawing action (stroke, fill, lasso) annotates the selected object here only if it changed pixels.
  function annotateIfChanged(labels, objects, started, rect) {
    if (rectDiffers(started.before, labels, rect)) objects.add(state.activeId);
    return rect;
  }

  const radius = () => state.size / 2;
  const full = () => ({ x0: 0, y0: 0, x1: current.labels.width, y1: current.labels.height });

  function onPointerDown(event) {
    parts.canvas.setPointerCapture?.(event.pointerId);
    if (event.button === 1 || spaceDown) {
      pointer = { mode: "pan", x: event.clientX, y: event.clientY };
      event.preventDefault();
      return;
    }
    if (!current || (event.button !== 0 && event.button !== 2)) return;
    const erase = state.tool === "eraser" || event.button === 2;
    const [x, y] = view.toSource(event.clientX, event.clientY);
    if (state.tool === "click") return clickTool.down(x, y, event.clientX, event.clientY, event.button === 2 || event.altKey);
    if (state.tool === "fill") {
      let filled = null;
      edit((labels, objects, started) => {
        filled = floodFill(labels, x, y, state.activeId, erase);
        return annotateIfChanged(labels, objects, started, filled?.rect ?? null);
      });
      if (filled && filled.count > 0.5 * current.labels.data.length) {
        setStatus(`Filled ${filled.count} pixels, over half the frame: was the outline closed? (Ctrl+Z undoes it)`);
      }
      return;
    }
    const started = history.begin(current.labels, current.objects);
    if (state.tool === "lasso") {
      pointer = { mode: "lasso", erase, started };
      lasso = [[x, y]];
    } else {
      const rect = strokeSegment(current.labels, x, y, x, y, radius(), state.activeId, erase);
      pointer = { mode: "stroke", erase, started, rect, last: [x, y] };
      view.paintLabels(current.labels, colours(), rect);
    }
    redraw();
  }

  function onPointerMove(event) {
    const [x, y] = view.toSource(event.clientX, event.clientY);
    cursor = { x, y, r: state.tool === "brush" || state.tool === "eraser" ? radius() : 0.5 };
    if (pointer?.mode === "pan") {
      view.pan(event.clientX - pointer.x, event.clientY - pointer.y);
      pointer.x = event.clientX;
      pointer.y = event.clientY;
    } else if (pointer?.mode === "stroke") {
      const points = event.getCoalescedEvents?.().map((e) => view.toSource(e.clientX, e.clientY)) ?? [];
      if (!points.length) points.push([x, y]);
      let rect = null;
      for (const [px, py] of points) {
        rect = unionRect(rect, strokeSegment(current.labels, pointer.last[0], pointer.last[1], px, py, radius(), state.activeId, pointer.erase));
        pointer.last = [px, py];
      }
      pointer.rect = unionRect(pointer.rect, rect);
      if (rect) view.paintLabels(current.labels, colours(), rect);
    } else if (pointer?.mode === "lasso") {
      const [lx, ly] = lasso[lasso.length - 1];
      if (Math.hypot(x - lx, y - ly) * view.scale >= 2) lasso.push([x, y]);
    } else if (clickTool.press()) {
      lasso = clickTool.move(x, y, event.clientX, event.clientY); // the box being drawn
    }
    redraw();
  }

  function onPointerUp(event) {
    if (clickTool.press()) {
      lasso = null;
      if (!current) return clickTool.cancel();
      const [x, y] = view.toSource(event.clientX, event.clientY);
      clickTool.up(x, y, event.clientX, event.clientY);
      return redraw();
    }
    const done = pointer;
    pointer = null;
    if (!done || done.mode === "pan" || !current) return;
    let rect = done.rect ?? null;
    if (done.mode === "lasso") {
      rect = fillPolygon(current.labels, lasso, state.activeId, done.erase);
      lasso = null;
    }
    annotateIfChanged(current.labels, current.objects, done.started, rect);
    if (history.commit(state.frame, current.labels, current.objects, done.started, rect)) afterEdit(rect);
    else redraw();
  }

  function onWheel(event) {
    event.preventDefault();
    const [sx, sy] = view.toCanvas(event.clientX, event.clientY);
    view.zoomAt(Math.exp(-event.deltaY * 0.0015), sx, sy);
    redraw();
  }

  function onKey(event) {
    if (!state.open) return;
    event.stopImmediatePropagation(); // ComfyUI's own shortcuts never fire while the editor is open
    const typing = event.target instanceof HTMLInputElement && event.target.type === "text";
    if (event.key === " " && !typing) {
      spaceDown = event.type === "keydown";
      event.preventDefault();
      return;
    }
    if (event.type !== "keydown" || (typing && event.key !== "Escape")) return;
    const action = actionFor(event);
    if (!action) return;
    event.preventDefault();
    run(action);
  }

  function setTool(tool) {
    if (!TOOLS.includes(tool)) return;
    if (tool !== "click") clickTool.cancel();
    state.tool = tool;
    for (const b of parts.tools) b.classList.toggle("active", b.dataset.tool === tool);
  }

  function setSize(size) {
    state.size = Math.max(1, Math.min(400, Math.round(size)));
    parts.size.value = String(Math.min(200, state.size));
    parts.sizeText.textContent = `${state.size} px`;
    if (cursor) cursor.r = radius();
    redraw();
  }

  function neighbour(list, direction) {
    const sorted = [...new Set(list)].sort((a, b) => a - b);
    return direction > 0 ? sorted.find((f) => f > state.frame) : sorted.reverse().find((f) => f < state.frame);
  }

  function keyframeFrames() {
    const frames = new Set([...spec.keyframes.keys()]);
    for (const [frame, e] of entries) {
      if (e.objects.size && (e.dirty || !e.tentative)) frames.add(frame); else if (e.dirty) frames.delete(frame);
    }
    for (const k of host.shot()?.keyframes ?? []) frames.add(k.frame);
    return [...frames];
  }

  // Every action, from a key, a button or a test: [name, argument].
  function run([name, arg]) {
    switch (name) {
      case "tool": return setTool(arg);
      case "swap": return setTool(state.tool === "eraser" ? "brush" : "eraser");
      case "size": return setSize(state.size * (arg > 0 ? 1.25 : 0.8) + arg);
      case "object": {
        const id = spec.objects[arg]?.id;
        if (id) selectObject(id);
        return;
      }
      case "newObject": {
        const id = nextObjectId(spec);
        if (id == null) return setStatus("All 255 object ids are in use.");
        ensureObject(spec, id);
        specDirty = true;
        return selectObject(id);
      }
      case "acceptClick": {
        const done = clickTool.accept();
        if (!done || !current) return setStatus("Nothing to accept: with the click tool (C), click on the object first.");
        const started = { before: done.before, objects: new Set(current.objects) };
        current.objects.add(done.id);
        if (history.commit(state.frame, current.labels, current.objects, started, full())) afterEdit(full());
        return setStatus(`Object ${done.id}'s mask accepted into this frame's keyframe (Ctrl+Z undoes it).`);
      }
      case "cycleClick": return clickTool.cycle();
      case "undo": case "redo": {
        clickTool.cancel();
        if (!current) return;
        const done = history[name](state.frame, current.labels);
        if (!done) return setStatus(`Nothing to ${name} on this frame.`);
        current.objects = done.objects;
        return afterEdit(done.rect);
      }
      case "overlay": state.overlay = !state.overlay; parts.overlay.checked = state.overlay; return redraw();
      case "reference": state.reference = !state.reference; parts.reference.checked = state.reference; return redraw();
      case "prefill": {
        if (!reference) return setStatus("No reference masks on this frame (run the workflow to get propagated masks).");
        edit((labels, objects) => {
          labels.data.set(reference.labels.data);
          objects.clear();
          for (const id of idsIn(labels.data)) objects.add(id);
          return full();
        });
        return setStatus(`Started this frame's keyframe from ${reference.source}.`);
      }
      case "clearObject":
        return edit((labels, objects) => {
          objects.add(state.activeId);
          return replaceValue(labels, state.activeId, 0) ?? { x0: 0, y0: 0, x1: 1, y1: 1 };
        });
      case "unannotate":
        return edit((labels, objects) => {
          objects.delete(arg);
          return replaceValue(labels, arg, 0) ?? { x0: 0, y0: 0, x1: 1, y1: 1 };
        });
      case "removeKeyframe":
        return edit((labels, objects) => {
          labels.data.fill(0);
          objects.clear();
          return full();
        });
      case "dropFrames": return dropFrames(arg);
      case "step": return goTo(state.frame + arg);
      case "ends": return goTo(arg < 0 ? 0 : frameCount() - 1);
      case "keyframe": {
        const target = neighbour(keyframeFrames(), arg);
        return target == null ? setStatus("No keyframe that way.") : goTo(target);
      }
      case "suggestion": {
        const target = neighbour(host.context().suggestions.map((s) => s.frame), arg);
        return target == null ? setStatus("No suggested frame that way (Suggest Frames marks them on a run).") : goTo(target);
      }
      case "fit": view.fit(); return redraw();
      case "zoom": {
        view.zoomAt(arg, parts.canvas.clientWidth / 2, parts.canvas.clientHeight / 2);
        return redraw();
      }
      case "help": state.help = !state.help; parts.help.hidden = !state.help; return;
      case "save": return save().catch(() => {});
      case "close": return clickTool.prompt() ? clickTool.cancel() : close();
      default: return undefined;
    }
  }

  // Keyframes painted on other footage (a template's, after its video was swapped): gone from
  // the list at once, no frames needed; the artist then loads the shot and paints on it.
  function dropFrames(frames) {
    if (!state.open && !isDirty()) spec = parseSpec(host.readSpec()).spec;
    const dropped = frames.filter((f) => spec.keyframes.delete(f) | entries.delete(f));
    host.writeSpec(serializeSpec(spec));
    specDirty = false;
    host.misfitDropped?.();
    if (!parts) return;
    setMessage(parts.error, "");
    setStatus(`Dropped ${dropped.length} keyframe${dropped.length === 1 ? "" : "s"} painted on other footage: load `
      + "the shot's frames and paint the objects on them.");
    if (state.open) goTo(state.frame);
  }

  // The node's last run failed: its error here, above the painting (ComfyUI's own dialog opens
  // under this window), in place of "Running this node...".
  function showRunError(text) {
    if (!parts) return;
    parts.drop.hidden = !host.misfit?.();
    if (!text) return;
    if (parts.status.textContent.startsWith("Running this node")) setStatus("");
    setMessage(parts.error, text);
    if (state.open && !host.shot()) showMessage(text);
  }

  function selectObject(id) {
    if (id !== state.activeId) clickTool.cancel();
    state.activeId = id;
    updateSide();
  }

  // ------------------------------------------------------------------ saving

  // Upload every edited keyframe, then write the node's keyframe list (only when something changed).
  function save() {
    clickTool.cancel(); // a preview not accepted with Enter is never saved
    if (savingPromise) return savingPromise;
    if (!isDirty()) return Promise.resolve(false);
    savingPromise = (async () => {
      state.saving = true;
      setMessage(parts.error, "");
      setStatus("Saving\u2026");
      let uploaded = 0;
      try {
        for (const [frame, entry] of entries) {
          if (!entry.dirty) continue;
          for (const id of idsIn(entry.labels.data)) entry.objects.add(id);
          if (!entry.objects.size) {
            spec.keyframes.delete(frame);
          } else {
            const { width, height, data } = entry.labels;
            const file = await host.server.upload(frame, data, width, height);
            spec.keyframes.set(frame, { file, objects: new Set(entry.objects) });
            for (const id of entry.objects) ensureObject(spec, id);
            uploaded++;
          }
          entry.dirty = false;
        }
        host.writeSpec(serializeSpec(spec));
        specDirty = false;
        setStatus(`Saved: ${spec.keyframes.size} keyframe${spec.keyframes.size === 1 ? "" : "s"} (${uploaded} uploaded into input/memvos).`);
        return true;
      } catch (err) {
        setMessage(parts.error, `Not saved: ${errorText(err)}`);
        throw err;
      } finally {
        state.saving = false;
        savingPromise = null;
        updateSide();
      }
    })();
    return savingPromise;
  }

  // ------------------------------------------------------------------ showing the state

  function setMessage(node, text) {
    node.textContent = text ?? "";
    node.hidden = !text;
  }

  function setStatus(text) {
    setMessage(parts.status, text);
  }

  function showMessage(text) {
    parts.message.querySelector(".memvos-ed-message-text").textContent = text;
    parts.message.hidden = !text;
    parts.drop.hidden = !host.misfit?.();
  }

  function redraw() {
    if (drawQueued || !view) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      if (!state.open) return;
      view.draw({ overlay: state.overlay, opacity: state.opacity, ghost: state.reference, cursor: pointer?.mode === "pan" ? null : cursor, lasso });
    });
  }

  function updateFrameUI() {
    const count = frameCount();
    parts.scrub.max = String(Math.max(0, count - 1));
    parts.scrub.value = String(state.frame);
    const entry = entries.get(state.frame);
    parts.counter.textContent = count ? `frame ${state.frame} \u00B7 ${state.frame + 1}/${count}${entry?.dirty ? " \u25CF" : ""}` : "no frames";
    const marks = new Map();
    const mark = (frame) => {
      if (!marks.has(frame)) marks.set(frame, { frame, keyframe: false, suggestion: false, lines: [], classes: [] });
      return marks.get(frame);
    };
    for (const frame of keyframeFrames()) {
      const inputs = host.shot()?.keyframes?.find((k) => k.frame === frame);
      const painted = spec.keyframes.has(frame) || entries.get(frame)?.objects.size;
      const m = mark(frame);
      if (painted) {
        m.keyframe = true;
        m.lines.push("painted keyframe");
      } else if (inputs) {
        m.classes.push("input");
        m.lines.push(`keyframe from the node's inputs (objects ${inputs.objects.join(", ")})`);
      }
    }
    for (const s of host.context().suggestions) {
      const m = mark(s.frame);
      m.suggestion = true;
      m.lines.push(...s.lines);
    }
    parts.timeline.setMarks(count, [...marks.values()].sort((a, b) => a.frame - b.frame));
    parts.timeline.setFrame(state.frame);
  }

  function updateSide() {
    if (!parts) return;
    updateFrameUI();
    const here = current?.objects ?? new Set();
    const present = current ? new Set(idsIn(current.labels.data)) : new Set();
    if (!spec.objects.some((o) => o.id === state.activeId)) ensureObject(spec, state.activeId);
    parts.objects.replaceChildren(...spec.objects.map((object, k) => objectRow(object, k, here, present)));
    const rows = keyframeFrames().sort((a, b) => a - b).map((frame) => {
      const entry = entries.get(frame);
      const saved = spec.keyframes.get(frame);
      const objects = entry?.objects.size ? [...entry.objects] : saved ? [...saved.objects] : null;
      const inputs = host.shot()?.keyframes?.find((k) => k.frame === frame);
      const text = objects
        ? `frame ${frame} \u00B7 objects ${objects.sort((a, b) => a - b).join(", ")}${entry?.dirty ? " \u25CF unsaved" : ""}`
        : `frame ${frame} \u00B7 objects ${inputs.objects.join(", ")} (from inputs)`;
      const b = document.createElement("button");
      b.className = `memvos-ed-keyframe${frame === state.frame ? " current" : ""}${objects ? "" : " input"}`;
      b.dataset.frame = String(frame);
      b.textContent = text;
      b.addEventListener("click", () => goTo(frame));
      return b;
    });
    parts.keyframes.replaceChildren(...rows);
    const dirty = isDirty();
    parts.top.querySelector(".memvos-ed-save").disabled = !dirty || state.saving;
    parts.top.querySelector(".memvos-ed-undo").disabled = !history.canUndo(state.frame);
    parts.top.querySelector(".memvos-ed-redo").disabled = !history.canRedo(state.frame);
    parts.top.querySelector(".memvos-ed-prefill").disabled = !reference;
  }

  function objectRow(object, k, here, present) {
    const row = document.createElement("div");
    row.className = `memvos-ed-object${object.id === state.activeId ? " selected" : ""}`;
    row.dataset.object = String(object.id);
    row.title = k < 9 ? `Select with ${k + 1}` : "";
    row.addEventListener("click", () => selectObject(object.id));
    const colour = document.createElement("input");
    colour.type = "color";
    colour.value = "#" + objectColor(spec, object.id).map((c) => c.toString(16).padStart(2, "0")).join("");
    colour.title = "Display colour";
    colour.addEventListener("input", () => {
      object.color = [1, 3, 5].map((i) => parseInt(colour.value.slice(i, i + 2), 16));
      specDirty = true;
      if (current) view.paintLabels(current.labels, colours());
      if (reference) view.setGhost(reference.labels, colours());
      redraw();
    });
    const name = document.createElement("input");
    name.type = "text";
    name.value = object.name;
    name.placeholder = `object ${object.id}`;
    name.maxLength = 100;
    name.addEventListener("change", () => { object.name = name.value; specDirty = true; updateSide(); });
    const id = document.createElement("span");
    id.textContent = `#${object.id}`;
    const status = document.createElement("span");
    status.className = "memvos-ed-here";
    status.textContent = here.has(object.id) ? (present.has(object.id) ? "painted" : "not visible") : "\u2013";
    row.append(colour, name, id, status);
    if (here.has(object.id)) {
      const drop = document.createElement("button");
      drop.textContent = "\u00D7";
      drop.title = "Not annotated on this frame (propagation decides here)";
      drop.addEventListener("click", (e) => { e.stopPropagation(); selectObject(object.id); run(["unannotate", object.id]); });
      row.append(drop);
    }
    return row;
  }

  return editor;
}
