// The editor's keyboard shortcuts: one table (the tools' own first, from their modules), used to
// dispatch and to print the help; and the window's key listener while the editor is open.
import { TOOLS } from "./tools/index.js";

const TOOL_SHORTCUTS = TOOLS.flatMap((tool) => tool.shortcuts);
const TOOL_KEYS = new Map(TOOL_SHORTCUTS.flatMap((shortcut) => Object.entries(shortcut.keys)));

export const SHORTCUTS = [
  ...TOOL_SHORTCUTS.map(({ label, keys, help }) => {
    const [name, arg] = Object.values(keys)[0];
    return [label, name === "tool" ? arg : name, help];
  }),
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
  if (TOOL_KEYS.has(key)) return [...TOOL_KEYS.get(key)];
  switch (key) {
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

// The window's keydown and keyup while the editor is open (capture phase: ComfyUI's own
// shortcuts never fire then); ed: the editor's state (editor_state.js).
export function onKey(ed, event) {
  if (!ed.state.open) return;
  event.stopImmediatePropagation();
  const typing = event.target instanceof HTMLInputElement && event.target.type === "text";
  if (event.key === " " && !typing) {
    ed.spaceDown = event.type === "keydown";
    event.preventDefault();
    return;
  }
  if (event.type !== "keydown" || (typing && event.key !== "Escape")) return;
  const action = actionFor(event);
  if (!action) return;
  event.preventDefault();
  ed.act(action);
}
