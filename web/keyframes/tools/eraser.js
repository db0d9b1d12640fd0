// The eraser: the brush's stroke taking the selected object's pixels back to background (other
// objects stay); X swaps brush and eraser.
import { createStroke } from "./brush.js";

export const eraser = {
  name: "eraser", button: "Eraser", title: "Eraser (E)",
  shortcuts: [
    { label: "E", help: "Eraser (erases the selected object only; right-drag erases too)",
      keys: { e: ["tool", "eraser"], E: ["tool", "eraser"] } },
    { label: "X", help: "Swap brush and eraser", keys: { x: ["swap"], X: ["swap"] } },
  ],
  create(ed) {
    const swap = () => ed.act(["tool", ed.state.tool === "eraser" ? "brush" : "eraser"]);
    return { ...createStroke(ed, true), actions: { swap } };
  },
};
