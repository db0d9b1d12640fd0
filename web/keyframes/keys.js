// The editor's keyboard shortcuts: one table, used to dispatch and to print the help.

export const SHORTCUTS = [
  ["B", "brush", "Brush"],
  ["E", "eraser", "Eraser (erases the selected object only; right-drag erases too)"],
  ["X", "swap", "Swap brush and eraser"],
  ["F", "fill", "Fill: click inside a closed outline (or any region) to fill it"],
  ["L", "lasso", "Lasso: draw an outline, it is filled when you let go"],
  ["C", "click", "Click to mask (SAM 2.1): click adds, right click or Alt+click subtracts, drag draws a box"],
  ["Enter / Tab", "acceptClick", "Click to mask: accept the mask into the object's layer / next candidate"],
  ["[ / ]", "size", "Brush smaller / bigger"],
  ["1 \u2013 9", "object", "Select object 1\u20139 of the list"],
  ["N", "newObject", "New object"],
  ["Ctrl+Z", "undo", "Undo (this frame)"],
  ["Ctrl+Shift+Z / Ctrl+Y", "redo", "Redo"],
  ["O", "overlay", "Show / hide the painted masks"],
  ["R", "reference", "Show / hide the reference outline (propagated or input masks)"],
  ["P", "prefill", "Start this frame's keyframe from the reference masks"],
  ["\u2190 / \u2192", "step", "Previous / next frame (Shift: 10 frames)"],
  [", / .", "keyframe", "Previous / next keyframe"],
  ["S / Shift+S", "suggestion", "Next / previous suggested frame"],
  ["Home / End", "ends", "First / last frame"],
  ["Delete", "clearObject", "Clear the selected object on this frame (marks it not visible here)"],
  ["Shift+Delete", "removeKeyframe", "Remove this frame's keyframe"],
  ["0", "fit", "Fit the frame in the window"],
  ["+ / \u2212, wheel", "zoom", "Zoom (around the pointer with the wheel)"],
  ["Space+drag, middle-drag", "pan", "Pan"],
  ["Ctrl+S", "save", "Save the keyframes (upload into input/memvos)"],
  ["Esc", "close", "Save and close"],
  ["H, ?", "help", "Show / hide this help"],
];

// keydown event -> [action, argument] or null.
export function actionFor(event) {
  const key = event.key, ctrl = event.ctrlKey || event.metaKey, shift = event.shiftKey;
  if (ctrl) {
    const k = key.toLowerCase();
    if (k === "z") return shift ? ["redo"] : ["undo"];
    if (k === "y") return ["redo"];
    if (k === "s") return ["save"];
    return null;
  }
  if (event.altKey) return null;
  switch (key) {
    case "b": case "B": return ["tool", "brush"];
    case "e": case "E": return ["tool", "eraser"];
    case "f": case "F": return ["tool", "fill"];
    case "l": case "L": return ["tool", "lasso"];
    case "c": case "C": return ["tool", "click"];
    case "Enter": return ["acceptClick"];
    case "Tab": return ["cycleClick"];
    case "x": case "X": return ["swap"];
    case "[": return ["size", -1];
    case "]": return ["size", 1];
    case "n": case "N": return ["newObject"];
    case "o": case "O": return ["overlay"];
    case "r": case "R": return ["reference"];
    case "p": case "P": return ["prefill"];
    case "ArrowLeft": return ["step", shift ? -10 : -1];
    case "ArrowRight": return ["step", shift ? 10 : 1];
    case ",": case "<": return ["keyframe", -1];
    case ".": case ">": return ["keyframe", 1];
    case "s": return ["suggestion", 1];
    case "S": return ["suggestion", -1];
    case "Home": return ["ends", -1];
    case "End": return ["ends", 1];
    case "Delete": case "Backspace": return shift ? ["removeKeyframe"] : ["clearObject"];
    case "0": return ["fit"];
    case "+": case "=": return ["zoom", 1.25];
    case "-": case "_": return ["zoom", 0.8];
    case "Escape": return ["close"];
    case "h": case "H": case "?": return ["help"];
    default:
      if (/^[1-9]$/.test(key)) return ["object", Number(key) - 1];
      return null;
  }
}
