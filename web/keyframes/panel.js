// The part of the editor that lives inside the Keyframes node (both renderers): what the node
// holds (keyframes, objects, the shot), buttons to open the editor and to load the shot's frames.
// Painting happens in the editor window, which is not tied to either renderer.
import { addStyleOnce, el, rgbCss } from "../player/dom.js";
import { objectColor, parseSpec } from "./spec.js";

const STYLE_ID = "memvos-panel-style";
const CSS = `
.memvos-kf-panel { display: flex; flex-direction: column; gap: 4px; width: 100%; box-sizing: border-box;
  padding: 2px; font: 12px sans-serif; color: var(--input-text, #ddd); min-height: 0; overflow: hidden; }
.memvos-kf-panel button { background: var(--comfy-input-bg, #222); color: inherit; cursor: pointer;
  border: 1px solid var(--border-color, #555); border-radius: 4px; padding: 1px 6px; font: inherit; }
.memvos-kf-panel .memvos-kf-row { display: flex; align-items: center; gap: 4px; flex-wrap: wrap; }
.memvos-kf-panel .memvos-kf-open { font-weight: bold; }
.memvos-kf-panel .memvos-kf-chip { padding: 0 5px; }
.memvos-kf-panel .memvos-kf-chip.input { border-style: dashed; }
.memvos-kf-panel .memvos-kf-swatch { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
.memvos-kf-panel .memvos-kf-info { color: var(--descrip-text, #aaa); overflow-wrap: anywhere; }
.memvos-kf-panel .memvos-kf-error { color: #ff6b6b; overflow-wrap: anywhere; }
.memvos-kf-panel [hidden] { display: none !important; }
`;

export function createPanel({ host, editor }) {
  addStyleOnce(STYLE_ID, CSS);
  const openButton = el("button", { className: "memvos-kf-open", text: "Open editor", title: "Paint keyframes (opens over the page)",
    on: { click: () => editor.open() } });
  const loadButton = el("button", { className: "memvos-kf-load", text: "Load frames", title: "Run this node (and what feeds it) so the editor shows the shot",
    on: { click: () => run() } });
  const summary = el("div", { className: "memvos-kf-info memvos-kf-summary" });
  const chips = el("div", { className: "memvos-kf-row memvos-kf-chips" });
  const objects = el("div", { className: "memvos-kf-row memvos-kf-objects" });
  const shotLine = el("div", { className: "memvos-kf-info memvos-kf-shot" });
  const error = el("div", { className: "memvos-kf-error", attrs: { role: "alert" } });
  const dropButton = el("button", { className: "memvos-kf-drop", text: "Drop keyframes that do not fit",
    title: "Remove the keyframes painted on other footage (a template's) from this node",
    on: { click: () => editor.act(["dropFrames", host.misfit?.()?.frames ?? []]) } });
  const element = el("div", { className: "memvos-kf-panel" }, [
    el("div", { className: "memvos-kf-row" }, [openButton, loadButton]), summary, chips, objects, shotLine, error,
    dropButton,
  ]);
  const panel = { element, refresh, showError, contentHeight };
  element.memvosPanel = panel;

  async function run() {
    showError("");
    try {
      await host.loadFrames();
    } catch (err) {
      showError(`Could not queue the node: ${err?.message ?? err}`);
    }
  }

  function showError(text) {
    error.textContent = text ?? "";
    error.hidden = !text;
  }

  function refresh() {
    const { spec, problem } = parseSpec(host.readSpec());
    const shot = host.shot();
    const painted = [...spec.keyframes.keys()].sort((a, b) => a - b);
    const fromInputs = (shot?.keyframes ?? []).filter((k) => !spec.keyframes.has(k.frame)
      && Object.values(k.sources ?? {}).some((s) => s !== "painted"));
    const n = painted.length + fromInputs.length;
    summary.textContent = n
      ? `${n} keyframe${n === 1 ? "" : "s"}${fromInputs.length ? ` (${fromInputs.length} from inputs)` : ""} \u00B7 click one to edit it`
      : "No keyframe yet: open the editor and paint the objects on a frame.";
    chips.replaceChildren(
      ...painted.map((frame) => chip(frame, `${frame}`, `frame ${frame}: objects ${[...spec.keyframes.get(frame).objects].join(", ")}`, "")),
      ...fromInputs.map((k) => chip(k.frame, `${k.frame}`, `frame ${k.frame}: objects ${k.objects.join(", ")} from the node's inputs`, " input")));
    objects.replaceChildren(...spec.objects.map((o) => {
      const swatch = el("span", { className: "memvos-kf-swatch" });
      swatch.style.background = rgbCss(objectColor(spec, o.id));
      return el("span", { attrs: { "data-object": o.id } }, [swatch, el("span", { text: ` ${o.name || `object ${o.id}`}` })]);
    }));
    shotLine.textContent = shot
      ? `Shot: ${shot.numFrames} frames, ${shot.width}\u00D7${shot.height}`
      : "Shot not loaded: press Load frames (or run the workflow) to paint on it.";
    showError(problem ?? host.runError?.() ?? "");
    dropButton.hidden = !host.misfit?.();
  }

  // The height the panel's lines need, whatever height it is given (the classic canvas gives a
  // DOM widget what the node leaves it, so a message added after a run fell below the node's edge).
  function contentHeight() {
    const shown = [...element.children].filter((c) => !c.hidden);
    const style = getComputedStyle(element);
    const px = (v) => parseFloat(v) || 0;
    return shown.reduce((h, c) => h + c.offsetHeight, 0) + px(style.rowGap) * Math.max(0, shown.length - 1)
      + px(style.paddingTop) + px(style.paddingBottom);
  }

  function chip(frame, text, title, extra) {
    return el("button", { className: `memvos-kf-chip${extra}`, text, title, attrs: { "data-frame": frame },
      on: { click: () => editor.open(frame) } });
  }

  refresh();
  return panel;
}
