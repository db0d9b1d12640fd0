// The lasso: an outline drawn with the pointer, filled with the selected object when let go.
import { annotateIfChanged, commit } from "../editor_edits.js";
import { redraw } from "../editor_display.js";
import { fillPolygon } from "../raster.js";

const POINT_SPACING_PX = 2; // on screen: closer pointer positions add no point to the outline

export const lasso = {
  name: "lasso", button: "Lasso", title: "Lasso (L)",
  shortcuts: [{ label: "L", help: "Lasso: draw an outline, it is filled when you let go",
    keys: { l: ["tool", "lasso"], L: ["tool", "lasso"] } }],
  create(ed) {
    let press = null; // {erase, started}

    function down(x, y, event, erase) {
      press = { erase, started: ed.history.begin(ed.current.labels, ed.current.objects) };
      ed.outline = [[x, y]];
      redraw(ed);
    }

    function move(x, y) {
      const [lx, ly] = ed.outline[ed.outline.length - 1];
      if (Math.hypot(x - lx, y - ly) * ed.view.scale >= POINT_SPACING_PX) ed.outline.push([x, y]);
    }

    function up() {
      const done = press;
      press = null;
      const { current } = ed;
      if (!current) return;
      const rect = fillPolygon(current.labels, ed.outline, ed.state.activeId, done.erase);
      ed.outline = null;
      annotateIfChanged(ed, current.labels, current.objects, done.started, rect);
      if (!commit(ed, done.started, rect)) redraw(ed);
    }

    return { down, move, up };
  },
};
