// The editor's reading and writing: saving (one indexed PNG uploaded per changed keyframe, then
// the node's keyframe list), dropping keyframes painted on other footage, and asking for a run
// of the node to load the shot.
import { cancelTools, isDirty } from "./editor_state.js";
import { errorText, setMessage, setStatus } from "./editor_display.js";
import { goTo } from "./editor_frames.js";
import { updateSide } from "./editor_objects.js";
import { idsIn } from "./raster.js";
import { ensureObject, parseSpec, serializeSpec } from "./spec.js";

// Upload every edited keyframe, then write the node's keyframe list (only when something changed).
export function save(ed) {
  cancelTools(ed); // a preview not accepted with Enter is never saved
  if (ed.savingPromise) return ed.savingPromise;
  if (!isDirty(ed)) return Promise.resolve(false);
  const { state, parts, entries, host } = ed;
  ed.savingPromise = (async () => {
    state.saving = true;
    setMessage(parts.error, "");
    setStatus(ed, "Saving\u2026");
    let uploaded = 0;
    try {
      for (const [frame, entry] of entries) {
        if (!entry.dirty) continue;
        for (const id of idsIn(entry.labels.data)) entry.objects.add(id);
        if (!entry.objects.size) {
          ed.spec.keyframes.delete(frame);
        } else {
          const { width, height, data } = entry.labels;
          const file = await host.server.upload(frame, data, width, height);
          ed.spec.keyframes.set(frame, { file, objects: new Set(entry.objects) });
          for (const id of entry.objects) ensureObject(ed.spec, id);
          uploaded++;
        }
        entry.dirty = false;
      }
      host.writeSpec(serializeSpec(ed.spec));
      ed.specDirty = false;
      setStatus(ed, `Saved: ${ed.spec.keyframes.size} keyframe${ed.spec.keyframes.size === 1 ? "" : "s"} (${uploaded} uploaded into input/memvos).`);
      return true;
    } catch (err) {
      setMessage(parts.error, `Not saved: ${errorText(err)}`);
      throw err;
    } finally {
      state.saving = false;
      ed.savingPromise = null;
      updateSide(ed);
    }
  })();
  return ed.savingPromise;
}

// Keyframes painted on other footage (a template's, after its video was swapped): gone from
// the list at once, no frames needed; the artist then loads the shot and paints on it.
export function dropFrames(ed, frames) {
  const { state, entries, host } = ed;
  if (!state.open && !isDirty(ed)) ed.spec = parseSpec(host.readSpec()).spec;
  const dropped = frames.filter((f) => ed.spec.keyframes.delete(f) | entries.delete(f));
  host.writeSpec(serializeSpec(ed.spec));
  ed.specDirty = false;
  host.misfitDropped?.();
  if (!ed.parts) return;
  setMessage(ed.parts.error, "");
  setStatus(ed, `Dropped ${dropped.length} keyframe${dropped.length === 1 ? "" : "s"} painted on other footage: load `
    + "the shot's frames and paint the objects on them.");
  if (state.open) goTo(ed, state.frame);
}

export async function loadFrames(ed) {
  setMessage(ed.parts.status, "Running this node to load the shot\u2026");
  try {
    await ed.host.loadFrames();
  } catch (err) {
    setMessage(ed.parts.error, `Could not queue the node: ${errorText(err)}`);
  }
}

export const IO_ACTIONS = {
  save: (ed) => save(ed).catch(() => {}),
  dropFrames: (ed, frames) => dropFrames(ed, frames),
};
