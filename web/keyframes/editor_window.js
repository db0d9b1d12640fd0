// The editor's window: built on first use, opened over the page (the page keeps running
// underneath), opened at a frame to fix, closed (saving first).
import { isDirty } from "./editor_state.js";
import { redraw, setMessage, setStatus, showRunError } from "./editor_display.js";
import { buildEditorDom } from "./editor_dom.js";
import { goTo } from "./editor_frames.js";
import { loadFrames, save } from "./editor_io.js";
import { updateSide } from "./editor_objects.js";
import { listenPointer } from "./editor_pointer.js";
import { setSize, setTool } from "./editor_tools.js";
import { onKey } from "./keys.js";
import { parseSpec } from "./spec.js";
import { createView } from "./view.js";

function build(ed) {
  const { state, host } = ed;
  const run = (action) => ed.act(action);
  const on = {
    tool: (t) => setTool(ed, t), sizeInput: (v) => setSize(ed, v),
    overlay: (v) => { state.overlay = v; redraw(ed); },
    opacity: (v) => { state.opacity = v; redraw(ed); }, reference: (v) => { state.reference = v; redraw(ed); },
    undo: () => run(["undo"]), redo: () => run(["redo"]), prefill: () => run(["prefill"]),
    clearObject: () => run(["clearObject"]), removeKeyframe: () => run(["removeKeyframe"]), fit: () => run(["fit"]),
    help: () => run(["help"]), save: () => run(["save"]), close: () => run(["close"]), load: () => loadFrames(ed),
    drop: () => run(["dropFrames", host.misfit?.()?.frames ?? []]),
    newObject: () => run(["newObject"]), seek: (f) => goTo(ed, f), back: () => run(["step", -1]), forward: () => run(["step", 1]),
  };
  const dom = buildEditorDom(on);
  ed.element = dom.element;
  dom.element.memvosEditor = ed.editor;
  ed.parts = dom.parts;
  ed.view = createView(ed.parts.canvas);
  ed.onKey = (event) => onKey(ed, event);
  listenPointer(ed);
  new ResizeObserver(() => redraw(ed)).observe(ed.parts.canvas);
}

// Open at `frame` (default: the first keyframe).
export async function open(ed, frame = null) {
  const { state, host } = ed;
  if (!ed.element) build(ed);
  const { parts } = ed;
  if (!state.open) {
    if (!isDirty(ed)) {
      const parsed = parseSpec(host.readSpec());
      ed.spec = parsed.spec;
      setMessage(parts.error, parsed.problem ?? "");
    }
    state.activeId = ed.spec.objects[0]?.id ?? state.activeId;
    document.body.append(ed.element);
    window.addEventListener("keydown", ed.onKey, true);
    window.addEventListener("keyup", ed.onKey, true);
    state.open = true;
    parts.title.textContent = `Keyframes \u2014 ${host.title()}`;
    setTool(ed, state.tool);
    setSize(ed, state.size);
    parts.overlay.checked = state.overlay;
    parts.reference.checked = state.reference;
    requestAnimationFrame(() => { ed.view.fit(); redraw(ed); });
    showRunError(ed, host.runError?.() ?? null);
  }
  const start = frame ?? [...ed.spec.keyframes.keys()].sort((a, b) => a - b)[0] ?? state.frame;
  return goTo(ed, start);
}

// "Fix this frame" from a player: open at `frame`; when that frame has no painted keyframe
// yet, show the propagated masks (masksToken) ready to correct. They become a keyframe of that
// frame (and only of that frame) once the artist changes them; closing untouched adds nothing.
export async function openAt(ed, frame, { masksToken = null, prefill = true } = {}) {
  ed.fixToken = masksToken;
  await open(ed, frame);
  const entry = ed.entries.get(frame);
  if (prefill && ed.reference && ed.current === entry && ed.state.frame === frame && !ed.spec.keyframes.has(frame)
      && !entry.dirty && entry.objects.size === 0) {
    ed.act(["prefill"]);
    entry.dirty = false;
    entry.tentative = true;
    updateSide(ed);
    setStatus(ed, `Frame ${frame} shows the propagated masks: correct them and this frame becomes a keyframe ` +
      "(P keeps them as they are; closing untouched adds nothing).");
  }
}

export function close(ed) {
  ed.closing ??= closeNow(ed).finally(() => { ed.closing = null; });
  return ed.closing;
}

async function closeNow(ed) {
  if (!ed.state.open) return true;
  try {
    await save(ed);
  } catch {
    return false; // the error is shown; the window stays open with the edits
  }
  ed.state.open = false;
  ed.gesture = null;
  ed.fixToken = null;
  window.removeEventListener("keydown", ed.onKey, true);
  window.removeEventListener("keyup", ed.onKey, true);
  ed.element.remove();
  ed.host.closed?.();
  return true;
}
