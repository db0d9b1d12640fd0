// Stand-in for ComfyUI's `scripts/app.js` in the browser tests: just the parts of the legacy
// extension API the MemVOS player uses, with the same call order as the real frontend
// (beforeRegisterNodeDef on registration; constructor then onNodeCreated on creation, before the
// node joins the graph; onExecuted(output) when the server reports a node's UI output).
import { api } from "./api.js";

class StubNode {
  constructor(nodeData) {
    this.type = nodeData.name;
    this.comfyClass = nodeData.name;
    this.title = nodeData.display_name ?? nodeData.name;
    this.id = -1;
    this.graph = null;
    this.size = [240, 80];
    this.inputs = [];
    this.outputs = [];
    this.widgets = [];
    this.dirty = 0;
    this.container = document.createElement("div");
    this.container.className = "stub-node";
    const heading = document.createElement("h3");
    heading.textContent = this.title;
    this.container.append(heading);
    for (const [name, spec] of Object.entries(nodeData.input?.required ?? {})) {
      const [type, options = {}] = spec;
      if (type === "INT" || type === "FLOAT") {
        this.addWidget("number", name, options.default ?? 0, null, options);
        this.inputs.push({ name, type, link: null, widget: { name } });
      } else if (type === "STRING") {
        this.addWidget(options.multiline ? "customtext" : "text", name, options.default ?? "", null, options);
      } else {
        this.inputs.push({ name, type, link: null });
      }
    }
    for (const type of nodeData.output ?? []) this.outputs.push({ type, links: [] });
  }

  addWidget(type, name, value, callback, options) {
    const widget = { type, name, value, callback, options: options ?? {} };
    this.widgets.push(widget);
    return widget;
  }

  // Same signature and value semantics as the frontend's LGraphNode.prototype.addDOMWidget.
  addDOMWidget(name, type, element, options = {}) {
    const widget = { name, type, element, options: { hideOnZoom: true, ...options } };
    Object.defineProperty(widget, "value", {
      get() { return this.options.getValue?.() ?? ""; },
      set(v) { this.options.setValue?.(v); this.callback?.(this.value); },
    });
    this.widgets.push(widget);
    const holder = document.createElement("div");
    holder.className = "stub-dom-widget";
    holder.append(element);
    this.container.append(holder);
    return widget;
  }

  computeSize() {
    const extra = this.widgets.reduce((sum, w) => sum + (w.options?.getMinHeight?.() ?? 20), 0);
    return [240, 30 + extra];
  }

  setSize(size) {
    this.size = [...size];
  }

  setDirtyCanvas() {
    this.dirty++;
  }
}

class StubGraph {
  constructor() {
    this.nodes = [];
    this.links = {}; // classic LiteGraph shape: links[id] -> {origin_id, origin_slot, target_id, target_slot}
    this.lastNodeId = 0;
    this.lastLinkId = 0;
    this.changes = 0;
  }

  add(node) {
    node.id = ++this.lastNodeId;
    node.graph = this;
    node.container.dataset.nodeId = String(node.id);
    this.nodes.push(node);
    document.getElementById("graph").append(node.container);
    return node;
  }

  getNodeById(id) {
    return this.nodes.find((n) => n.id === id) ?? null;
  }

  connect(origin, originSlot, target, inputName) {
    const targetSlot = target.inputs.findIndex((i) => i.name === inputName);
    if (targetSlot < 0) throw new Error(`${target.type} has no input ${inputName}`);
    const id = ++this.lastLinkId;
    this.links[id] = { id, origin_id: origin.id, origin_slot: originSlot, target_id: target.id, target_slot: targetSlot };
    target.inputs[targetSlot].link = id;
    origin.outputs[originSlot]?.links.push(id);
    return id;
  }

  setDirtyCanvas() {}

  change() {
    this.changes++;
  }
}

class StubApp {
  static maskeditor_is_opended = null;

  constructor() {
    this.extensions = [];
    this.graph = new StubGraph();
    this.nodeTypes = {};
    this.queued = [];
  }

  registerExtension(extension) {
    if (!extension?.name) throw new Error("extension has no name");
    if (this.extensions.some((e) => e.name === extension.name)) throw new Error(`extension ${extension.name} registered twice`);
    this.extensions.push(extension);
  }

  async registerNodeDef(nodeData) {
    const nodeType = class extends StubNode {
      constructor() {
        super(nodeData);
      }
    };
    nodeType.comfyClass = nodeData.name;
    for (const ext of this.extensions) await ext.beforeRegisterNodeDef?.(nodeType, nodeData, this);
    this.nodeTypes[nodeData.name] = nodeType;
  }

  createNode(name) {
    const node = new this.nodeTypes[name]();
    node.onNodeCreated?.();
    return this.graph.add(node);
  }

  // What the frontend does on the server's "executed" message.
  deliverExecuted(nodeId, output) {
    const node = this.graph.getNodeById(nodeId);
    node?.onExecuted?.(output);
  }

  // What the frontend's api does with a websocket message from the server ("execution_error",
  // a pack's send_sync event): a CustomEvent on api with the message's data.
  deliverEvent(type, detail) {
    api.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // The frontend's app.queuePrompt(number, batchCount, queueNodeIds): recorded for the test,
  // which plays the server and delivers the outputs.
  async queuePrompt(number, batchCount = 1, queueNodeIds = undefined) {
    this.queued.push({ number, batchCount, queueNodeIds: queueNodeIds ?? null });
    return true;
  }

  // The frontend keeps the open workflow across a page reload (in the browser's storage); the
  // stub keeps the values of the plain (non-DOM) widgets, and gives them back on boot.
  saveWorkflow() {
    const values = {};
    for (const node of this.graph.nodes) {
      values[node.id] = Object.fromEntries(node.widgets.filter((w) => !w.element).map((w) => [w.name, w.value]));
    }
    localStorage.setItem(WORKFLOW_KEY, JSON.stringify(values));
  }

  restoreWorkflow() {
    const values = JSON.parse(localStorage.getItem(WORKFLOW_KEY) ?? "null");
    if (!values) return false;
    for (const node of this.graph.nodes) {
      for (const [name, value] of Object.entries(values[node.id] ?? {})) {
        const widget = node.widgets.find((w) => w.name === name);
        if (widget) widget.value = value;
      }
      node.onConfigure?.({});
    }
    return true;
  }
}

const WORKFLOW_KEY = "memvos-stub-workflow";

export const app = new StubApp();
