// The editor's state: one object that every editor module reads and changes, made once per editor.
// What it holds is listed here; what each field means is said beside it. `state`, `entries` and
// `history` are public too (editor.state, editor.entries, editor.history: tests and other
// extensions read them).
import { History } from "./history.js";
import { idsIn } from "./raster.js";
import { objectColor, parseSpec } from "./spec.js";

// host: see createEditor in editor.js.
export function createEditorState(host) {
  return {
    host,
    state: { open: false, frame: 0, activeId: 1, tool: "brush", size: 20, overlay: true, opacity: 0.55,
      reference: true, help: false, saving: false },
    entries: new Map(), // frame -> {labels: {width, height, data}, objects: Set, dirty, tentative}
    frameCache: new Map(), // frame -> Promise<ImageBitmap>, least recently used first
    history: new History(),
    spec: parseSpec("").spec, // the node's keyframe list and objects, as edited
    specDirty: false, // the objects (names, colours, new ones) changed since the last save
    editor: null, // the public object (editor.js)
    element: null, parts: null, view: null, // the window, its named elements (editor_dom.js), the canvas view
    tools: null, // name -> tool (editor_tools.js; the tools are in tools/)
    current: null, // the entry of the frame shown, once loaded
    reference: null, // {labels, source}: the outline under the painting (editor_frames.js)
    fixToken: null, // the masks "fix this frame" came from
    serial: 0, pending: Promise.resolve(), // the frame being loaded (a newer goTo makes older loads stop)
    drawQueued: false,
    gesture: null, // the pointer press under way: {tool} or {mode: "pan", x, y} (editor_pointer.js)
    cursor: null, // {x, y, r} in source pixels, drawn by the view
    outline: null, // a polygon drawn over the frame (the lasso, the click tool's box)
    spaceDown: false, onKey: null, // Space held (pans); the window's key listener (keys.js)
    savingPromise: null, closing: null,
    act: null, goTo: null, // set by editor.js: run an action, go to a frame (for buttons and keys)
  };
}

export function isDirty(ed) {
  return ed.specDirty || [...ed.entries.values()].some((e) => e.dirty);
}

// Object id -> display colour, for every object listed or painted on this frame or its reference.
export function colours(ed) {
  const { spec, current, reference } = ed;
  const map = new Map();
  const ids = new Set([...spec.objects.map((o) => o.id), ...(current ? idsIn(current.labels.data) : []),
    ...(reference ? idsIn(reference.labels.data) : [])]);
  for (const id of ids) map.set(id, objectColor(spec, id));
  return map;
}

export const fullRect = (ed) => ({ x0: 0, y0: 0, x1: ed.current.labels.width, y1: ed.current.labels.height });

export const brushRadius = (ed) => ed.state.size / 2;

// Frames with a keyframe: saved, painted here (not a tentative "fix this frame" prefill) or from the node's inputs.
export function keyframeFrames(ed) {
  const frames = new Set([...ed.spec.keyframes.keys()]);
  for (const [frame, e] of ed.entries) {
    if (e.objects.size && (e.dirty || !e.tentative)) frames.add(frame); else if (e.dirty) frames.delete(frame);
  }
  for (const k of ed.host.shot()?.keyframes ?? []) frames.add(k.frame);
  return [...frames];
}

// Drops what the tools hold that is not yet an edit (the click tool's preview), but `except`'s.
export function cancelTools(ed, except = null) {
  for (const [name, tool] of ed.tools) if (name !== except) tool.cancel?.();
}

// The chosen tool meets the frame shown (the click tool has the server embed it ahead of a click).
export function toolShown(ed) {
  ed.tools.get(ed.state.tool)?.shown?.();
}
