// The brush: a round stroke of the selected object, its size in source pixels ([ and ]).
import { annotateIfChanged, commit } from "../editor_edits.js";
import { redraw } from "../editor_display.js";
import { brushRadius, colours } from "../editor_state.js";
import { strokeSegment, unionRect } from "../raster.js";

export const brush = {
  name: "brush", button: "Brush", title: "Brush (B)",
  shortcuts: [{ label: "B", help: "Brush", keys: { b: ["tool", "brush"], B: ["tool", "brush"] } }],
  create: (ed) => createStroke(ed, false),
};

// A stroke tool (the brush; the eraser with erases = true): one history step per press.
export function createStroke(ed, erases) {
  let stroke = null; // {erase, started, rect, last}

  function down(x, y, event, erase) {
    const { current } = ed;
    const started = ed.history.begin(current.labels, current.objects);
    const rect = strokeSegment(current.labels, x, y, x, y, brushRadius(ed), ed.state.activeId, erase);
    stroke = { erase, started, rect, last: [x, y] };
    ed.view.paintLabels(current.labels, colours(ed), rect);
    redraw(ed);
  }

  function move(x, y, event) {
    const { view } = ed;
    const points = event.getCoalescedEvents?.().map((e) => view.toSource(e.clientX, e.clientY)) ?? [];
    if (!points.length) points.push([x, y]);
    let rect = null;
    for (const [px, py] of points) {
      rect = unionRect(rect, strokeSegment(ed.current.labels, stroke.last[0], stroke.last[1], px, py, brushRadius(ed),
        ed.state.activeId, stroke.erase));
      stroke.last = [px, py];
    }
    stroke.rect = unionRect(stroke.rect, rect);
    if (rect) view.paintLabels(ed.current.labels, colours(ed), rect);
  }

  function up() {
    const done = stroke;
    stroke = null;
    if (!ed.current) return;
    annotateIfChanged(ed, ed.current.labels, ed.current.objects, done.started, done.rect ?? null);
    if (!commit(ed, done.started, done.rect ?? null)) redraw(ed);
  }

  return { down, move, up, erases, cursorRadius: () => brushRadius(ed) };
}
