// The side panel: the objects (select, add, colour, name, "not annotated here") and the list of
// keyframes; and which buttons of the top row can be used now.
import { colours, cancelTools, isDirty, keyframeFrames } from "./editor_state.js";
import { redraw, setStatus } from "./editor_display.js";
import { updateFrameUI } from "./editor_timeline.js";
import { idsIn } from "./raster.js";
import { ensureObject, nextObjectId, objectColor } from "./spec.js";

export function selectObject(ed, id) {
  if (id !== ed.state.activeId) cancelTools(ed);
  ed.state.activeId = id;
  updateSide(ed);
}

export function updateSide(ed) {
  const { parts, state, entries, spec, host, history } = ed;
  if (!parts) return;
  updateFrameUI(ed);
  const here = ed.current?.objects ?? new Set();
  const present = ed.current ? new Set(idsIn(ed.current.labels.data)) : new Set();
  if (!spec.objects.some((o) => o.id === state.activeId)) ensureObject(spec, state.activeId);
  parts.objects.replaceChildren(...spec.objects.map((object, k) => objectRow(ed, object, k, here, present)));
  const rows = keyframeFrames(ed).sort((a, b) => a - b).map((frame) => {
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
    b.addEventListener("click", () => ed.goTo(frame));
    return b;
  });
  parts.keyframes.replaceChildren(...rows);
  const dirty = isDirty(ed);
  parts.top.querySelector(".memvos-ed-save").disabled = !dirty || state.saving;
  parts.top.querySelector(".memvos-ed-undo").disabled = !history.canUndo(state.frame);
  parts.top.querySelector(".memvos-ed-redo").disabled = !history.canRedo(state.frame);
  parts.top.querySelector(".memvos-ed-prefill").disabled = !ed.reference;
}

function objectRow(ed, object, k, here, present) {
  const row = document.createElement("div");
  row.className = `memvos-ed-object${object.id === ed.state.activeId ? " selected" : ""}`;
  row.dataset.object = String(object.id);
  row.title = k < 9 ? `Select with ${k + 1}` : "";
  row.addEventListener("click", () => selectObject(ed, object.id));
  const colour = document.createElement("input");
  colour.type = "color";
  colour.value = "#" + objectColor(ed.spec, object.id).map((c) => c.toString(16).padStart(2, "0")).join("");
  colour.title = "Display colour";
  colour.addEventListener("input", () => {
    object.color = [1, 3, 5].map((i) => parseInt(colour.value.slice(i, i + 2), 16));
    ed.specDirty = true;
    if (ed.current) ed.view.paintLabels(ed.current.labels, colours(ed));
    if (ed.reference) ed.view.setGhost(ed.reference.labels, colours(ed));
    redraw(ed);
  });
  const name = document.createElement("input");
  name.type = "text";
  name.value = object.name;
  name.placeholder = `object ${object.id}`;
  name.maxLength = 100;
  name.addEventListener("change", () => { object.name = name.value; ed.specDirty = true; updateSide(ed); });
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
    drop.addEventListener("click", (e) => { e.stopPropagation(); selectObject(ed, object.id); ed.act(["unannotate", object.id]); });
    row.append(drop);
  }
  return row;
}

export const OBJECT_ACTIONS = {
  object: (ed, index) => {
    const id = ed.spec.objects[index]?.id;
    if (id) selectObject(ed, id);
  },
  newObject: (ed) => {
    const id = nextObjectId(ed.spec);
    if (id == null) return setStatus(ed, "All 255 object ids are in use.");
    ensureObject(ed.spec, id);
    ed.specDirty = true;
    return selectObject(ed, id);
  },
};
