// Boots the stub like ComfyUI boots its frontend: import every extension module the server lists,
// register node definitions (extensions see them first), then build a small graph:
//   AddAnnotation #1 -> AddAnnotation #2 -> Passthrough #3 -> Propagate #4
//   Propagate #5 (nothing upstream), Composite #6 (never executed: the API-mode case)
import { app } from "/scripts/app.js";
import { api } from "/scripts/api.js";

const NODE_DEFS = [
  {
    name: "MemVOSAddAnnotation", display_name: "Add Annotation Frame (MemVOS)",
    input: { required: { frames: ["IMAGE"], mask: ["MASK"], frame_index: ["INT", { default: 0, min: 0, max: 100000 }],
                         object_id: ["INT", { default: 1, min: 1, max: 255 }], session: ["MEMVOS_SESSION"] } },
    output: ["MEMVOS_SESSION"],
  },
  { name: "StubPassthrough", display_name: "Passthrough", input: { required: { session: ["MEMVOS_SESSION"] } }, output: ["MEMVOS_SESSION"] },
  {
    name: "MemVOSPropagate", display_name: "Propagate (MemVOS)",
    input: { required: { session: ["MEMVOS_SESSION"], frames: ["IMAGE"] } },
    output: ["MASK", "MASK", "MEMVOS_SESSION"],
  },
  { name: "MemVOSComposite", display_name: "Composite (MemVOS)", input: { required: { frames: ["IMAGE"], masks: ["MASK"] } }, output: ["IMAGE"] },
];

async function boot() {
  if (new URLSearchParams(location.search).get("renderer") === "vue") document.body.classList.add("vue-nodes");
  const response = await fetch(api.apiURL("/extensions"));
  for (const url of await response.json()) await import(url);
  for (const def of NODE_DEFS) await app.registerNodeDef(def);
  const first = app.createNode("MemVOSAddAnnotation");
  const second = app.createNode("MemVOSAddAnnotation");
  const pass = app.createNode("StubPassthrough");
  const propagate = app.createNode("MemVOSPropagate");
  const lonely = app.createNode("MemVOSPropagate");
  const composite = app.createNode("MemVOSComposite");
  app.graph.connect(first, 0, second, "session");
  app.graph.connect(second, 0, pass, "session");
  app.graph.connect(pass, 0, propagate, "session");
  second.widgets.find((w) => w.name === "frame_index").callback = (value) => { second.callbackValue = value; };
  window.stub = { app, first, second, pass, propagate, lonely, composite };
}

boot().then(() => { window.stubReady = true; }, (error) => { window.stubError = String(error?.stack ?? error); });
