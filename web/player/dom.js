// Tiny DOM helpers for the player and the keyframe editor. Text always goes in through
// textContent, never as markup, so ids, reasons and details from a preview never inject HTML.

export function el(tag, { className, text, title, attrs, on } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  if (title != null) node.title = String(title);
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, String(value));
  for (const [type, handler] of Object.entries(on ?? {})) node.addEventListener(type, handler);
  for (const child of children) if (child) node.append(child);
  return node;
}

export function rgbCss([r, g, b]) {
  return `rgb(${r | 0}, ${g | 0}, ${b | 0})`;
}

const STYLE_ID = "memvos-player-style";

// One static stylesheet, added the first time a player is built (not at import time).
// The canvas takes its height from its own aspect ratio (the Vue renderer gives the widget no
// fixed height) and shrinks or grows with object-fit when the classic canvas sizes the widget.
const CSS = `
.memvos-player { display: flex; flex-direction: column; gap: 4px; width: 100%; height: 100%;
  box-sizing: border-box; padding: 2px; font: 12px sans-serif; color: var(--input-text, #ddd);
  min-height: 0; overflow: hidden; }
.memvos-player canvas.memvos-view { flex: 1 1 auto; min-height: 60px; width: 100%; height: auto;
  object-fit: contain; background: #000; border-radius: 4px; }
.memvos-player .memvos-row { display: flex; align-items: center; gap: 4px; flex-wrap: wrap; }
.memvos-player button { background: var(--comfy-input-bg, #222); color: inherit; cursor: pointer;
  border: 1px solid var(--border-color, #555); border-radius: 4px; padding: 1px 6px; font: inherit; }
.memvos-player button:disabled { opacity: 0.5; cursor: default; }
.memvos-player input[type=range].memvos-scrub { flex: 1 1 80px; min-width: 60px; }
.memvos-player input[type=range].memvos-opacity { width: 60px; }
.memvos-player .memvos-counter { font-variant-numeric: tabular-nums; white-space: nowrap; }
.memvos-player .memvos-timeline { position: relative; height: 14px; flex: 0 0 14px; cursor: pointer;
  background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #555); border-radius: 3px; }
.memvos-player .memvos-playhead { position: absolute; top: -1px; bottom: -1px; width: 2px;
  margin-left: -1px; background: #fff; pointer-events: none; }
.memvos-player .memvos-marker { position: absolute; top: 1px; bottom: 1px; width: 7px; margin-left: -4px;
  padding: 0; border: 0; border-radius: 2px; }
.memvos-player .memvos-stale { position: absolute; top: 0; bottom: 0; pointer-events: none;
  background: repeating-linear-gradient(135deg, rgba(200, 200, 200, 0.45) 0 3px, transparent 3px 6px); }
.memvos-player .memvos-counter.stale { color: var(--descrip-text, #aaa); font-style: italic; }
.memvos-player .memvos-marker.key { background: #f5c518; }
.memvos-player .memvos-marker.suggest { background: #2ec4d6; }
.memvos-player .memvos-marker.key.suggest { background: linear-gradient(#f5c518 50%, #2ec4d6 50%); }
.memvos-player .memvos-object { display: inline-flex; align-items: center; gap: 3px;
  border: 1px solid var(--border-color, #555); border-radius: 4px; padding: 0 4px; }
.memvos-player .memvos-swatch { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
.memvos-player .memvos-info, .memvos-player .memvos-status { min-height: 1.2em; overflow-wrap: anywhere;
  color: var(--descrip-text, #aaa); }
.memvos-player .memvos-error { color: #ff6b6b; }
.memvos-player .memvos-hint { color: var(--descrip-text, #aaa); font-style: italic; }
.memvos-player [hidden] { display: none !important; }
`;

// A stylesheet added once per page (by id), when the first widget needs it, not at import time.
export function addStyleOnce(id, css, doc = document) {
  if (doc.getElementById(id)) return;
  const style = doc.createElement("style");
  style.id = id;
  style.textContent = css;
  doc.head.append(style);
}

export function ensureStyles(doc = document) {
  addStyleOnce(STYLE_ID, CSS, doc);
}

// `original` (may be undefined) followed by `extra`, with the same arguments: chaining the
// frontend's node callbacks (onNodeCreated, onExecuted, ...) without losing anyone else's.
export function chain(original, extra) {
  return function (...args) {
    const result = original?.apply(this, args);
    extra.apply(this, args);
    return result;
  };
}
