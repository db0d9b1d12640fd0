// Fill: a click inside a closed outline (or any region) fills it with the selected object.
import { annotateIfChanged, edit } from "../editor_edits.js";
import { setStatus } from "../editor_display.js";
import { floodFill } from "../raster.js";

export const fill = {
  name: "fill", button: "Fill", title: "Fill a closed outline (F)",
  shortcuts: [{ label: "F", help: "Fill: click inside a closed outline (or any region) to fill it",
    keys: { f: ["tool", "fill"], F: ["tool", "fill"] } }],
  create(ed) {
    function down(x, y, event, erase) {
      let filled = null;
      edit(ed, (labels, objects, started) => {
        filled = floodFill(labels, x, y, ed.state.activeId, erase);
        return annotateIfChanged(ed, labels, objects, started, filled?.rect ?? null);
      });
      if (filled && filled.count > 0.5 * ed.current.labels.data.length) {
        setStatus(ed, `Filled ${filled.count} pixels, over half the frame: was the outline closed? (Ctrl+Z undoes it)`);
      }
    }
    return { down };
  },
};
