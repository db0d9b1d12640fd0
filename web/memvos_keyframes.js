// ComfyUI-MemVOS: the keyframe editor of the Keyframes node. Uses ComfyUI's extension API
// (app.registerExtension, beforeRegisterNodeDef, onNodeCreated / onExecuted, node.addDOMWidget,
// app.queuePrompt, api.fetchApi), ComfyUI's /view and /upload/image, and the pack's routes.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { chain } from "./player/dom.js";
import { downstreamNodes } from "./player/graph.js";
import { createEditor } from "./keyframes/editor.js";
import { createPanel } from "./keyframes/panel.js";
import { createServer } from "./keyframes/server.js";

const NODE = "MemVOSKeyframes";
const SPEC_WIDGET = "keyframes";
const UI_KEY = "memvos_keyframes";
const PANEL_WIDGET = "memvos_keyframes_panel";
const MISFIT_EVENT = "memvos.keyframes_misfit";
const MIN_WIDTH = 340;
const MIN_PANEL_HEIGHT = 110;
const openEditors = new Set();

// Suggested frames and the propagated masks from the players downstream: masksToken(frame) is
// the nearest player's whose run covers that frame (chunks of a long shot each cover their own).
function downstreamContext(node) {
  const suggestions = [];
  const runs = [];
  for (const other of downstreamNodes(node, node.graph ?? app.graph)) {
    const player = other.memvosPlayer;
    if (!player?.manifest) continue;
    const { frameOffset, numFrames } = player.manifest;
    if (player.entry?.masks_token) runs.push({ token: player.entry.masks_token, first: frameOffset, end: frameOffset + numFrames });
    for (const s of player.manifest.suggestions) {
      const reason = [s.reason, s.detail].filter(Boolean).join(": ");
      suggestions.push({ frame: s.frame + player.manifest.frameOffset, lines: [`suggested: ${reason}`] });
    }
  }
  const masksToken = (frame) => runs.find((r) => frame >= r.first && frame < r.end)?.token ?? null;
  return { suggestions, masksToken };
}

function shotOf(output) {
  const entry = output?.[UI_KEY]?.[0];
  if (!entry || typeof entry.token !== "string" || !Number.isInteger(entry.num_frames)) return null;
  return { token: entry.token, numFrames: entry.num_frames, width: entry.width, height: entry.height,
    keyframes: Array.isArray(entry.keyframes) ? entry.keyframes : [] };
}

function attach(node) {
  // The list stays a plain STRING widget (what is saved and sent); only the panel is shown. The
  // frontend hides a widget by `hidden` (classic canvas) and `options.hidden` (Vue renderer).
  const specWidget = node.widgets?.find((w) => w.name === SPEC_WIDGET);
  if (specWidget) {
    specWidget.hidden = true;
    specWidget.options ??= {};
    specWidget.options.hidden = true;
  }
  let panel = null;
  const host = {
    server: createServer(api),
    title: () => `${node.title ?? NODE} (#${node.id})`,
    readSpec: () => String(specWidget?.value ?? ""),
    writeSpec: (text) => {
      if (!specWidget) return;
      specWidget.value = text;
      if (specWidget.value !== text) specWidget.options?.setValue?.(text);
      node.setDirtyCanvas?.(true, true);
      (node.graph ?? app.graph)?.setDirtyCanvas?.(true, true);
      // The frontend records a change (workflow modified, kept over a page reload) when it next
      // compares the graph, normally after a click or a key; the editor's keys never reach it.
      app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
      panel?.refresh();
    },
    shot: () => node.memvosShot ?? null,
    runError: () => node.memvosRunError ?? null,
    misfit: () => node.memvosMisfit ?? null,
    misfitDropped: () => {
      node.memvosMisfit = null;
      node.memvosRunError = null;
      panel?.refresh();
    },
    loadFrames: () => app.queuePrompt(0, 1, [String(node.id)]),
    context: () => downstreamContext(node),
    closed: () => {
      openEditors.delete(editor);
      panel?.refresh();
    },
  };
  const editor = createEditor(host);
  const open = editor.open;
  editor.open = (...args) => {
    openEditors.add(editor);
    return open(...args);
  };
  panel = createPanel({ host, editor });
  const widget = node.addDOMWidget(PANEL_WIDGET, "memvos.keyframes", panel.element, {
    serialize: false,
    getMinHeight: () => Math.max(MIN_PANEL_HEIGHT, Math.ceil(panel.contentHeight())),
  });
  widget.serialize = false;
  const refresh = panel.refresh;
  panel.refresh = () => {
    refresh();
    growToFit(node, panel.element);
  };
  widget.onRemove = chain(widget.onRemove, () => editor.state.open && editor.close());
  if (specWidget) specWidget.callback = chain(specWidget.callback, () => panel.refresh());
  node.memvosKeyframes = {
    editor, panel,
    open: (frame) => editor.open(frame),
    openAt: (frame, options) => {
      openEditors.add(editor);
      return editor.openAt(frame, options);
    },
  };
  const size = node.computeSize?.() ?? [MIN_WIDTH, 200];
  node.setSize?.([Math.max(node.size?.[0] ?? 0, size[0], MIN_WIDTH), Math.max(node.size?.[1] ?? 0, size[1])]);
}

// Taller when the panel's lines need it (a run's message and the drop button); never shrunk here,
// so a size the artist chose stays.
function growToFit(node, element) {
  const grow = (height) => {
    node.setSize([node.size[0], height]);
    node.setDirtyCanvas?.(true, true);
  };
  const needed = node.computeSize?.()?.[1];
  if (needed && node.size && needed > node.size[1]) grow(needed);
  // The frontend lays the widget out on a later frame, with its own margins: what still
  // overflows the height it was given then is added.
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const over = element.scrollHeight - element.clientHeight;
    if (over > 1 && node.size) grow(node.size[1] + over);
  }));
}

// The node's run failed: the error on the node and in its editor (where the artist is looking).
function showRunError(node, message, misfit = null) {
  if (!node?.memvosKeyframes) return;
  node.memvosRunError = message;
  if (misfit) node.memvosMisfit = misfit;
  node.memvosKeyframes.panel.refresh();
  node.memvosKeyframes.editor.showRunError(message);
}

function nodeById(id) {
  const graph = app.rootGraph ?? app.graph;
  return /^\d+$/.test(String(id ?? "")) ? graph?.getNodeById?.(Number(id)) : null;
}

function showOutput(node, output) {
  const shot = shotOf(output);
  if (!shot || !node.memvosKeyframes) return;
  node.memvosShot = shot;
  node.memvosRunError = null;
  node.memvosMisfit = null;
  node.memvosKeyframes.editor.setShot();
  node.memvosKeyframes.panel.refresh();
}

app.registerExtension({
  name: "memvos.keyframes",

  setup() {
    // ComfyUI's own key handling (graph undo on Ctrl+Z, ...) stands down while its mask editor is
    // open; it asks this function. It answers "open" while a MemVOS keyframe editor is open too.
    const App = app.constructor;
    if (!App || App.memvosKeyframesHooked) return;
    const previous = App.maskeditor_is_opended;
    App.maskeditor_is_opended = function (...args) {
      return openEditors.size > 0 || (typeof previous === "function" && previous.apply(this, args));
    };
    App.memvosKeyframesHooked = true;
    // Sent by the node before it refuses keyframes painted on other footage (nodes/keyframes_node.py).
    api.addEventListener?.(MISFIT_EVENT, ({ detail }) => {
      const frames = Array.isArray(detail?.frames) ? detail.frames.filter(Number.isInteger) : [];
      showRunError(nodeById(detail?.node), String(detail?.message ?? ""), frames.length ? { frames } : null);
    });
    api.addEventListener?.("execution_error", ({ detail }) => {
      const node = nodeById(detail?.node_id);
      if (node?.memvosKeyframes) showRunError(node, String(detail?.exception_message ?? "The node failed.").trim());
    });
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    nodeType.prototype.onNodeCreated = chain(nodeType.prototype.onNodeCreated, function () {
      attach(this);
    });
    nodeType.prototype.onExecuted = chain(nodeType.prototype.onExecuted, function (output) {
      showOutput(this, output);
    });
    nodeType.prototype.onConfigure = chain(nodeType.prototype.onConfigure, function () {
      this.memvosKeyframes?.panel.refresh(); // a loaded workflow set the keyframe list
    });
    nodeType.prototype.onRemoved = chain(nodeType.prototype.onRemoved, function () {
      const editor = this.memvosKeyframes?.editor;
      if (editor?.state.open) editor.close();
    });
  },

  // Outputs restored from the queue history (reopening a finished job).
  onNodeOutputsUpdated(outputs) {
    const graph = app.rootGraph ?? app.graph;
    for (const [id, output] of Object.entries(outputs ?? {})) {
      if (!/^\d+$/.test(id) || !output?.[UI_KEY]) continue;
      const node = graph?.getNodeById?.(Number(id));
      if (node) showOutput(node, output);
    }
  },
});
