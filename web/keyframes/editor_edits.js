// Changing the painting of the frame shown: one undoable step per edit (history.js), the objects
// it annotates, and the edit actions (undo/redo, start from the reference, clear, remove).
import { cancelTools, colours, fullRect } from "./editor_state.js";
import { redraw, setStatus } from "./editor_display.js";
import { updateSide } from "./editor_objects.js";
import { idsIn, rectDiffers, replaceValue } from "./raster.js";
import { ensureObject } from "./spec.js";

// Runs action(labels, objects, started) -> changed rect on the frame shown, as one history step.
export function edit(ed, action) {
  const { current, history } = ed;
  if (!current) return false;
  const started = history.begin(current.labels, current.objects);
  const rect = action(current.labels, current.objects, started);
  return commit(ed, started, rect);
}

// Records the change since `started` (history.begin) as one step; false when nothing changed.
export function commit(ed, started, rect) {
  const { current } = ed;
  if (!ed.history.commit(ed.state.frame, current.labels, current.objects, started, rect)) return false;
  afterEdit(ed, rect);
  return true;
}

export function afterEdit(ed, rect) {
  const { current, spec } = ed;
  current.dirty = true;
  current.tentative = false;
  for (const id of current.objects) if (!spec.objects.some((o) => o.id === id)) { ensureObject(spec, id); ed.specDirty = true; }
  ed.view.paintLabels(current.labels, colours(ed), rect);
  updateSide(ed);
  redraw(ed);
}

// A drawing action (stroke, fill, lasso) annotates the selected object here only if it changed pixels.
export function annotateIfChanged(ed, labels, objects, started, rect) {
  if (rectDiffers(started.before, labels, rect)) objects.add(ed.state.activeId);
  return rect;
}

function undoOrRedo(ed, name) {
  cancelTools(ed);
  if (!ed.current) return;
  const done = ed.history[name](ed.state.frame, ed.current.labels);
  if (!done) return setStatus(ed, `Nothing to ${name} on this frame.`);
  ed.current.objects = done.objects;
  return afterEdit(ed, done.rect);
}

export const EDIT_ACTIONS = {
  undo: (ed) => undoOrRedo(ed, "undo"),
  redo: (ed) => undoOrRedo(ed, "redo"),
  prefill: (ed) => {
    const { reference } = ed;
    if (!reference) return setStatus(ed, "No reference masks on this frame (run the workflow to get propagated masks).");
    edit(ed, (labels, objects) => {
      labels.data.set(reference.labels.data);
      objects.clear();
      for (const id of idsIn(labels.data)) objects.add(id);
      return fullRect(ed);
    });
    return setStatus(ed, `Started this frame's keyframe from ${reference.source}.`);
  },
  clearObject: (ed) => edit(ed, (labels, objects) => {
    objects.add(ed.state.activeId);
    return replaceValue(labels, ed.state.activeId, 0) ?? { x0: 0, y0: 0, x1: 1, y1: 1 };
  }),
  unannotate: (ed, id) => edit(ed, (labels, objects) => {
    objects.delete(id);
    return replaceValue(labels, id, 0) ?? { x0: 0, y0: 0, x1: 1, y1: 1 };
  }),
  removeKeyframe: (ed) => edit(ed, (labels, objects) => {
    labels.data.fill(0);
    objects.clear();
    return fullRect(ed);
  }),
};
