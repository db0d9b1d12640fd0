// The shot and its frames: going to a frame (its painting, its source image, its reference
// outline), the few decoded frames kept, a new run of the node, and the frame-stepping actions.
import { cancelTools, colours, keyframeFrames, toolShown } from "./editor_state.js";
import { errorText, redraw, setMessage, setStatus, showMessage } from "./editor_display.js";
import { updateSide } from "./editor_objects.js";
import { frameCount, neighbour } from "./editor_timeline.js";
import { resizeLabels } from "./raster.js";

const FRAME_CACHE = 6; // decoded source frames kept in the browser
const CLEAN_ENTRIES = 8; // unedited label maps kept (edited ones stay until saved)
const SCRUB_PAUSE_MS = 40;

function dims(ed) {
  const shot = ed.host.shot();
  return shot ? [shot.width, shot.height] : null;
}

// A new run of the node: new frames token, maybe another shot.
export function setShot(ed) {
  const { view, frameCache, entries } = ed;
  if (view) view.frame = null; // its bitmap is closed below: never drawn again
  for (const promise of frameCache.values()) promise.then((b) => b.close?.(), () => {});
  frameCache.clear();
  const size = dims(ed);
  for (const [frame, entry] of [...entries]) {
    if (!size || entry.labels.width !== size[0] || entry.labels.height !== size[1]) entries.delete(frame);
  }
  // "Running this node to load the shot..." has been answered (a failed run says so in showRunError).
  const shot = ed.host.shot();
  if (ed.parts && shot && ed.parts.status.textContent.startsWith("Running this node")) {
    setStatus(ed, `Shot loaded: ${shot.numFrames} frames, ${shot.width}\u00D7${shot.height}.`);
  }
  if (ed.state.open) goTo(ed, ed.state.frame);
}

function frameBitmap(ed, frame) {
  const { frameCache, host } = ed;
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
    old.then((b) => { if (ed.view?.frame !== b) b.close?.(); }, () => {});
  }
  return promise;
}

async function entryFor(ed, frame) {
  const { entries, spec, host } = ed;
  let entry = entries.get(frame);
  if (entry) return entry;
  const [width, height] = dims(ed);
  const saved = spec.keyframes.get(frame);
  if (saved) {
    const file = await host.server.keyframe(saved.file);
    let labels = { width: file.width, height: file.height, data: file.labels };
    if (file.width !== width || file.height !== height) {
      labels = resizeLabels(labels, width, height);
      setStatus(ed, `Keyframe file ${saved.file} is ${file.width}x${file.height}; shown resized to the shot's ${width}x${height}.`);
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

export function goTo(ed, frame) {
  const { state, host, view, parts } = ed;
  cancelTools(ed);
  const shot = host.shot();
  const count = frameCount(ed);
  const wanted = Math.max(0, Math.round(Number(frame) || 0));
  state.frame = shot ? Math.min(count - 1, wanted) : wanted; // without the shot, keep the frame asked for
  const mine = ++ed.serial;
  ed.current = null;
  ed.reference = null;
  view.setGhost(null);
  updateSide(ed); // without the shot too: the objects and keyframes of the list (a template's)
  if (!shot) {
    showMessage(ed, host.runError?.() ?? "The shot is not loaded yet: run this node (or the workflow) once, and its "
      + "frames appear here.");
    view.frame = null;
    redraw(ed);
    ed.pending = Promise.resolve();
    return ed.pending;
  }
  view.setSize(shot.width, shot.height);
  const frameNow = state.frame;
  ed.pending = (async () => {
    // Scrubbing a long shot asks for many frames in a row: only the one it stops on is fetched.
    await new Promise((resolve) => setTimeout(resolve, SCRUB_PAUSE_MS));
    if (mine !== ed.serial) return;
    let entry;
    try {
      entry = await entryFor(ed, frameNow);
    } catch (err) {
      if (mine === ed.serial) setMessage(parts.error, errorText(err));
      return;
    }
    if (mine !== ed.serial) return;
    ed.current = entry;
    view.paintLabels(entry.labels, colours(ed));
    updateSide(ed);
    redraw(ed);
    toolShown(ed);
    try {
      view.frame = await frameBitmap(ed, frameNow);
      if (mine === ed.serial) showMessage(ed, "");
    } catch (err) {
      if (mine !== ed.serial) return;
      view.frame = null;
      showMessage(ed, `${errorText(err)} Painting still works; the frame shows again after a run.`);
    }
    if (mine !== ed.serial) return;
    redraw(ed);
    await loadReference(ed, frameNow, mine);
  })();
  return ed.pending;
}

// The outline shown under the painting: the node's input keyframe on this frame if there is one,
// else the propagated masks of the run downstream (or the one "fix this frame" came from).
async function loadReference(ed, frame, mine) {
  const { host } = ed;
  const shot = host.shot();
  const fromInputs = shot.keyframes?.find((k) => k.frame === frame && Object.values(k.sources ?? {}).some((s) => s !== "painted"));
  const token = fromInputs ? shot.token : host.context().masksToken(frame) ?? ed.fixToken;
  if (!token) return;
  try {
    const got = await host.server.labels(token, frame);
    if (mine !== ed.serial) return;
    let labels = { width: got.width, height: got.height, data: got.labels };
    if (got.width !== shot.width || got.height !== shot.height) labels = resizeLabels(labels, shot.width, shot.height);
    ed.reference = { labels, source: fromInputs ? "the keyframe from the node's inputs" : "the propagated masks" };
    ed.view.setGhost(labels, colours(ed));
    updateSide(ed);
    redraw(ed);
  } catch (err) {
    if (mine === ed.serial && err.status !== 404) setStatus(ed, `No reference for this frame: ${errorText(err)}`);
  }
}

export const NAVIGATION_ACTIONS = {
  step: (ed, by) => goTo(ed, ed.state.frame + by),
  ends: (ed, end) => goTo(ed, end < 0 ? 0 : frameCount(ed) - 1),
  keyframe: (ed, direction) => {
    const target = neighbour(ed, keyframeFrames(ed), direction);
    return target == null ? setStatus(ed, "No keyframe that way.") : goTo(ed, target);
  },
  suggestion: (ed, direction) => {
    const target = neighbour(ed, ed.host.context().suggestions.map((s) => s.frame), direction);
    return target == null ? setStatus(ed, "No suggested frame that way (Suggest Frames marks them on a run).") : goTo(ed, target);
  },
};
