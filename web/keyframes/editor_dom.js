// The editor window's elements and stylesheet. Behaviour lives in the other editor modules
// (editor.js lists them); this file only builds the DOM (text through textContent only) and names
// the parts editor_window.js wires up.
import { addStyleOnce, el } from "../player/dom.js";
import { createTimeline } from "../player/timeline.js";
import { SHORTCUTS } from "./keys.js";
import { TOOLS } from "./tools/index.js";

const STYLE_ID = "memvos-editor-style";

const CSS = `
.memvos-editor { position: fixed; inset: 0; z-index: 10000; display: flex; flex-direction: column;
  background: rgba(12,12,12,0.97); color: #ddd; font: 13px sans-serif; user-select: none; }
.memvos-editor button { background: #2a2a2a; color: inherit; border: 1px solid #555; border-radius: 4px;
  padding: 2px 8px; font: inherit; cursor: pointer; }
.memvos-editor button:disabled { opacity: 0.45; cursor: default; }
.memvos-editor button.active { background: #3b5b8a; border-color: #7aa2e0; }
.memvos-editor .memvos-ed-row { display: flex; align-items: center; gap: 6px; flex-wrap: wrap; padding: 6px 8px; }
.memvos-editor .memvos-ed-top { border-bottom: 1px solid #333; }
.memvos-editor .memvos-ed-title { font-weight: bold; margin-right: 8px; }
.memvos-editor .memvos-ed-sep { width: 1px; height: 20px; background: #444; margin: 0 4px; }
.memvos-editor .memvos-ed-spacer { flex: 1 1 auto; }
.memvos-editor .memvos-ed-main { flex: 1 1 auto; display: flex; min-height: 0; }
.memvos-editor .memvos-ed-stage { flex: 1 1 auto; position: relative; min-width: 0; }
.memvos-editor canvas.memvos-ed-canvas { position: absolute; inset: 0; width: 100%; height: 100%; touch-action: none;
  cursor: crosshair; }
.memvos-editor .memvos-ed-message { position: absolute; left: 50%; top: 40%; transform: translate(-50%, -50%);
  max-width: 70%; text-align: center; background: rgba(0,0,0,0.75); padding: 12px 16px; border-radius: 6px; }
.memvos-editor .memvos-ed-side { width: 270px; flex: 0 0 270px; overflow-y: auto; border-left: 1px solid #333;
  padding: 6px 8px; box-sizing: border-box; }
.memvos-editor h4 { margin: 8px 0 4px; font-size: 12px; text-transform: uppercase; color: #999; }
.memvos-editor .memvos-ed-object { display: flex; align-items: center; gap: 4px; padding: 3px; border-radius: 4px;
  border: 1px solid transparent; cursor: pointer; }
.memvos-editor .memvos-ed-object.selected { border-color: #7aa2e0; background: #1f2a3a; }
.memvos-editor .memvos-ed-object input[type=text] { width: 90px; background: #1b1b1b; color: inherit;
  border: 1px solid #444; border-radius: 3px; font: inherit; padding: 1px 3px; }
.memvos-editor .memvos-ed-object input[type=color] { width: 22px; height: 20px; padding: 0; border: 0; background: none; }
.memvos-editor .memvos-ed-here { font-size: 11px; color: #aaa; min-width: 52px; }
.memvos-editor .memvos-ed-keyframe { display: block; width: 100%; text-align: left; margin: 2px 0; }
.memvos-editor .memvos-ed-keyframe.current { border-color: #f5c518; }
.memvos-editor .memvos-ed-keyframe.input { border-style: dashed; }
.memvos-editor .memvos-ed-bottom { border-top: 1px solid #333; }
.memvos-editor input[type=range].memvos-ed-scrub { flex: 1 1 200px; }
.memvos-editor .memvos-ed-counter { font-variant-numeric: tabular-nums; min-width: 140px; }
.memvos-editor .memvos-timeline { position: relative; height: 14px; flex: 1 1 100%; cursor: pointer;
  background: #222; border: 1px solid #555; border-radius: 3px; }
.memvos-editor .memvos-playhead { position: absolute; top: -1px; bottom: -1px; width: 2px; margin-left: -1px;
  background: #fff; pointer-events: none; }
.memvos-editor .memvos-marker { position: absolute; top: 1px; bottom: 1px; width: 7px; margin-left: -4px;
  padding: 0; border: 0; border-radius: 2px; }
.memvos-editor .memvos-marker.key { background: #f5c518; }
.memvos-editor .memvos-marker.input { background: #e07b39; }
.memvos-editor .memvos-marker.suggest { background: #2ec4d6; }
.memvos-editor .memvos-marker.key.suggest { background: linear-gradient(#f5c518 50%, #2ec4d6 50%); }
.memvos-editor .memvos-ed-status { color: #aaa; min-height: 1.2em; padding: 0 8px 6px; }
.memvos-editor .memvos-ed-error { color: #ff6b6b; padding: 0 8px 6px; }
.memvos-editor .memvos-ed-help td { padding: 1px 6px 1px 0; vertical-align: top; }
.memvos-editor .memvos-ed-help td:first-child { white-space: nowrap; color: #f5c518; }
.memvos-editor [hidden] { display: none !important; }
.memvos-editor .memvos-ed-message button { margin: 8px 4px 0; }
`;


// Builds the window; `on` maps control names to handlers. Returns {element, parts}.
export function buildEditorDom(on) {
  addStyleOnce(STYLE_ID, CSS);
  const button = (name, text, title) => el("button", { className: `memvos-ed-${name}`, text, title, on: { click: on[name] } });
  const tools = TOOLS.map((tool) => el("button", {
    className: `memvos-ed-tool`, text: tool.button, title: tool.title,
    attrs: { "data-tool": tool.name }, on: { click: () => on.tool(tool.name) },
  }));
  const size = el("input", { className: "memvos-ed-size", title: "Brush size in source pixels ([ and ])",
    attrs: { type: "range", min: 1, max: 200, step: 1, value: 20 }, on: { input: () => on.sizeInput(Number(size.value)) } });
  const sizeText = el("span", { className: "memvos-ed-size-text" });
  const overlay = el("input", { className: "memvos-ed-overlay", title: "Show the painted masks (O)",
    attrs: { type: "checkbox" }, on: { change: () => on.overlay(overlay.checked) } });
  const opacity = el("input", { className: "memvos-ed-opacity", title: "Opacity of the painted masks",
    attrs: { type: "range", min: 0.1, max: 1, step: 0.05, value: 0.55 }, on: { input: () => on.opacity(Number(opacity.value)) } });
  const reference = el("input", { className: "memvos-ed-reference", title: "Show the reference outline (R)",
    attrs: { type: "checkbox" }, on: { change: () => on.reference(reference.checked) } });
  const title = el("span", { className: "memvos-ed-title" });
  const top = el("div", { className: "memvos-ed-row memvos-ed-top" }, [
    title, ...tools, sizeText, size, el("span", { className: "memvos-ed-sep" }),
    button("undo", "Undo", "Undo (Ctrl+Z)"), button("redo", "Redo", "Redo (Ctrl+Shift+Z)"),
    el("span", { className: "memvos-ed-sep" }),
    el("label", { title: "Show the painted masks (O)" }, [overlay, el("span", { text: " masks" })]), opacity,
    el("label", { title: "Show the reference outline (R)" }, [reference, el("span", { text: " reference" })]),
    button("prefill", "From reference", "Start this frame's keyframe from the reference masks (P)"),
    button("clearObject", "Clear object", "Clear the selected object on this frame (Delete)"),
    button("removeKeyframe", "Remove keyframe", "Remove this frame's keyframe (Shift+Delete)"),
    button("fit", "Fit", "Fit the frame in the window (0)"),
    el("span", { className: "memvos-ed-spacer" }),
    button("help", "?", "Keyboard shortcuts (H)"),
    button("save", "Save", "Save the keyframes into input/memvos (Ctrl+S)"),
    button("close", "Save & close", "Save and close (Esc)"),
  ]);

  const canvas = el("canvas", { className: "memvos-ed-canvas" });
  const message = el("div", { className: "memvos-ed-message" });
  const loadButton = button("load", "Load the shot's frames", "Run this node (and what feeds it) to load the frames");
  const dropButton = button("drop", "Drop keyframes that do not fit", "Remove the keyframes painted on other footage "
    + "(a template's) from this node; then load the shot's frames and paint on them");
  dropButton.hidden = true;
  message.append(el("div", { className: "memvos-ed-message-text" }), dropButton, loadButton);
  const stage = el("div", { className: "memvos-ed-stage" }, [canvas, message]);

  const objects = el("div", { className: "memvos-ed-objects" });
  const keyframes = el("div", { className: "memvos-ed-keyframes" });
  const help = el("table", { className: "memvos-ed-help" }, SHORTCUTS.map(([keys, , text]) =>
    el("tr", {}, [el("td", { text: keys }), el("td", { text })])));
  help.hidden = true;
  const side = el("div", { className: "memvos-ed-side" }, [
    el("h4", { text: "Objects" }), objects, button("newObject", "+ New object", "Add an object (N)"),
    el("h4", { text: "Keyframes" }), keyframes, el("h4", { text: "Shortcuts (H)" }), help,
  ]);

  const scrub = el("input", { className: "memvos-ed-scrub", title: "Frame",
    attrs: { type: "range", min: 0, max: 0, step: 1, value: 0 }, on: { input: () => on.seek(Number(scrub.value)) } });
  const counter = el("span", { className: "memvos-ed-counter" });
  const timeline = createTimeline({ onSeek: on.seek, onMark: (mark) => on.seek(mark.frame) });
  timeline.element.title = "Click to go to a frame; marks: painted keyframes (yellow), keyframes from inputs (orange), suggested frames (cyan)";
  const bottom = el("div", { className: "memvos-ed-row memvos-ed-bottom" }, [
    button("back", "\u25C0|", "Previous frame (\u2190)"), button("forward", "|\u25B6", "Next frame (\u2192)"),
    scrub, counter, timeline.element,
  ]);
  const status = el("div", { className: "memvos-ed-status" });
  const error = el("div", { className: "memvos-ed-error", attrs: { role: "alert" } });
  const element = el("div", { className: "memvos-editor", attrs: { role: "dialog", "aria-label": "MemVOS keyframe editor", tabindex: -1 } },
    [top, el("div", { className: "memvos-ed-main" }, [stage, side]), bottom, status, error]);
  return {
    element,
    parts: { title, tools, size, sizeText, overlay, opacity, reference, canvas, message, objects, keyframes, help,
      scrub, counter, timeline, status, error, top, drop: dropButton },
  };
}
