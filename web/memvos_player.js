// ComfyUI-MemVOS: the mask preview player on the Propagate and Composite nodes.
// Uses only ComfyUI's documented extension API (app.registerExtension, beforeRegisterNodeDef,
// onNodeCreated / onExecuted, node.addDOMWidget, api.apiURL), which both the classic canvas and
// the Vue ("Nodes 2.0") renderer honour. Preview files come from the nodes through /view.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { chain } from "./player/dom.js";
import { parseSpec } from "./keyframes/spec.js";
import { findNearestUpstream, fixFrameUpstream } from "./player/graph.js";
import { createPlayer } from "./player/widget.js";

const PLAYER_NODES = new Set(["MemVOSPropagate", "MemVOSComposite", "MemVOSRefine"]);
const OUTPUT_KEY = "memvos_preview";
const WIDGET_NAME = "memvos_player";
const MIN_WIDTH = 360;
const MIN_HEIGHT = 300;

function viewURL(entry, filename) {
  const query = new URLSearchParams({
    filename,
    subfolder: typeof entry.subfolder === "string" ? entry.subfolder : "",
    type: typeof entry.type === "string" ? entry.type : "temp",
  });
  return api.apiURL(`/view?${query}`);
}

// The names the artist gave the objects in the nearest Keyframes node upstream.
function objectNameUpstream(node, id) {
  const keyframes = findNearestUpstream(node, node.graph ?? app.graph);
  const text = keyframes?.widgets?.find((w) => w.name === "keyframes")?.value;
  if (typeof text !== "string" || !text) return "";
  return parseSpec(text).spec.objects.find((o) => o.id === id)?.name ?? "";
}

function attachPlayer(node) {
  const player = createPlayer({
    resolveURL: viewURL,
    fixFrame: (clipFrame, masksToken) => fixFrameUpstream(node, node.graph ?? app.graph, clipFrame, masksToken),
    objectName: (id) => objectNameUpstream(node, id),
  });
  // Not serialised: nothing of the preview goes into the workflow or the prompt.
  const widget = node.addDOMWidget(WIDGET_NAME, "memvos.player", player.element, {
    serialize: false,
    getMinHeight: () => MIN_HEIGHT,
  });
  widget.serialize = false;
  widget.onRemove = chain(widget.onRemove, () => player.destroy());
  node.memvosPlayer = player;
  const size = node.computeSize?.() ?? [MIN_WIDTH, MIN_HEIGHT];
  node.setSize?.([Math.max(node.size?.[0] ?? 0, size[0], MIN_WIDTH), Math.max(node.size?.[1] ?? 0, size[1])]);
}

function previewEntry(output) {
  const entries = output?.[OUTPUT_KEY];
  return Array.isArray(entries) && entries.length ? entries[0] : null;
}

// Warnings of the nodes (nodes/messages.py: a mask resized to the frame, an output about to take
// gigabytes) as toasts, where the artist looks, not only in the server's log.
function toast(message) {
  const toasts = app.extensionManager?.toast;
  if (toasts?.add) toasts.add({ severity: "warn", summary: "MemVOS", detail: message, life: 10000 });
  else console.warn(`MemVOS: ${message}`);
}

app.registerExtension({
  name: "memvos.player",

  setup() {
    api.addEventListener?.("memvos.warning", ({ detail }) => {
      if (typeof detail?.message === "string" && detail.message) toast(detail.message);
    });
  },

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!PLAYER_NODES.has(nodeData?.name)) return;
    nodeType.prototype.onNodeCreated = chain(nodeType.prototype.onNodeCreated, function () {
      attachPlayer(this);
    });
    nodeType.prototype.onExecuted = chain(nodeType.prototype.onExecuted, function (output) {
      this.memvosPlayer?.show(previewEntry(output));
    });
    nodeType.prototype.onRemoved = chain(nodeType.prototype.onRemoved, function () {
      this.memvosPlayer?.destroy();
    });
  },

  // Outputs restored from the queue history (e.g. reopening a finished job) arrive here, not
  // through onExecuted; keys are execution ids, which for top-level nodes are the node ids.
  onNodeOutputsUpdated(outputs) {
    const graph = app.rootGraph ?? app.graph;
    for (const [id, output] of Object.entries(outputs ?? {})) {
      const entry = previewEntry(output);
      if (!entry || !/^\d+$/.test(id)) continue;
      graph?.getNodeById?.(Number(id))?.memvosPlayer?.show(entry);
    }
  },
});
