// Undo and redo, one history per frame: each step keeps only the rectangle it changed (before and
// after) and the frame's annotated objects. All frames together stay under a byte budget; past it
// the oldest steps are forgotten.
import { copyRect, pasteRect } from "./raster.js";

export const HISTORY_BYTES = 128 * 1024 * 1024;

export class History {
  constructor(budget = HISTORY_BYTES) {
    this.budget = budget;
    this.frames = new Map(); // frame -> {undo: [], redo: []}
    this.order = []; // steps in the order they were made: [frame, step]
    this.bytes = 0;
  }

  of(frame) {
    if (!this.frames.has(frame)) this.frames.set(frame, { undo: [], redo: [] });
    return this.frames.get(frame);
  }

  // A snapshot taken before an edit; `commit` turns it into a step once the edit is done.
  begin(labels, objects) {
    return { before: labels.data.slice(), objects: new Set(objects) };
  }

  commit(frame, labels, objects, started, rect) {
    if (!rect) return false;
    const before = copyRect({ data: started.before, width: labels.width }, rect);
    const after = copyRect(labels, rect);
    const sameObjects = started.objects.size === objects.size && [...objects].every((o) => started.objects.has(o));
    if (sameObjects && before.every((v, i) => v === after[i])) return false;
    const step = { rect, before, after, objectsBefore: started.objects, objectsAfter: new Set(objects) };
    const h = this.of(frame);
    h.undo.push(step);
    for (const dropped of h.redo) this.bytes -= dropped.before.length * 2;
    h.redo = [];
    this.order.push([frame, step]);
    this.bytes += before.length * 2;
    this.trim();
    return true;
  }

  trim() {
    while (this.bytes > this.budget && this.order.length > 1) {
      const [frame, step] = this.order.shift();
      const h = this.frames.get(frame);
      const at = h?.undo.indexOf(step) ?? -1;
      if (at >= 0) {
        h.undo.splice(at, 1);
        this.bytes -= step.before.length * 2;
      }
    }
  }

  // Undo (or redo) the last step of `frame` on `labels`; returns {rect, objects} or null.
  undo(frame, labels) {
    return this.move(frame, labels, "undo", "redo", "before", "objectsBefore");
  }

  redo(frame, labels) {
    return this.move(frame, labels, "redo", "undo", "after", "objectsAfter");
  }

  move(frame, labels, from, to, bytes, objects) {
    const h = this.frames.get(frame);
    const step = h?.[from].pop();
    if (!step) return null;
    h[to].push(step);
    pasteRect(labels, step.rect, step[bytes]);
    return { rect: step.rect, objects: new Set(step[objects]) };
  }

  canUndo(frame) {
    return Boolean(this.frames.get(frame)?.undo.length);
  }

  canRedo(frame) {
    return Boolean(this.frames.get(frame)?.redo.length);
  }
}
