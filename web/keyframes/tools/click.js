// Click to mask (SAM 2.1): the editor's side of click_tool.js, which asks the server and shows
// the preview. Enter accepts the preview as one undoable step, Tab shows the next candidate.
import { createClickTool } from "../click_tool.js";
import { commit } from "../editor_edits.js";
import { redraw, setStatus } from "../editor_display.js";
import { colours, fullRect } from "../editor_state.js";

export const click = {
  name: "click", button: "Click",
  title: "Click to mask with SAM 2.1 (C): click adds, right/Alt+click subtracts, drag draws a box, Enter accepts",
  shortcuts: [
    { label: "C", help: "Click to mask (SAM 2.1): click adds, right click or Alt+click subtracts, drag draws a box",
      keys: { c: ["tool", "click"], C: ["tool", "click"] } },
    { label: "Enter / Tab", help: "Click to mask: accept the mask into the object's layer / next candidate",
      keys: { Enter: ["acceptClick"], Tab: ["cycleClick"] } },
  ],
  create(ed) {
    const machine = createClickTool({
      get server() { return ed.host.server; }, token: () => ed.host.shot()?.token, frame: () => ed.state.frame,
      labels: () => ed.current.labels, objectId: () => ed.state.activeId, status: (text) => setStatus(ed, text),
      preview: () => { ed.view.paintLabels(ed.current.labels, colours(ed), fullRect(ed)); redraw(ed); },
    });

    function acceptClick() {
      const done = machine.accept();
      const { current } = ed;
      if (!done || !current) return setStatus(ed, "Nothing to accept: with the click tool (C), click on the object first.");
      const started = { before: done.before, objects: new Set(current.objects) };
      current.objects.add(done.id);
      commit(ed, started, fullRect(ed));
      return setStatus(ed, `Object ${done.id}'s mask accepted into this frame's keyframe (Ctrl+Z undoes it).`);
    }

    return {
      down: (x, y, event) => machine.down(x, y, event.clientX, event.clientY, event.button === 2 || event.altKey),
      move: (x, y, event) => { ed.outline = machine.move(x, y, event.clientX, event.clientY); }, // the box being drawn
      up(x, y, event) {
        ed.outline = null;
        if (!ed.current) return machine.cancel();
        machine.up(x, y, event.clientX, event.clientY);
        return redraw(ed);
      },
      cancel: () => machine.cancel(),
      shown: () => machine.prepare(),
      busy: () => Boolean(machine.prompt()),
      actions: { acceptClick, cycleClick: () => machine.cycle() },
      api: { clickTool: machine },
    };
  },
};
