// Boots the stub like ComfyUI boots its frontend: import every extension module the server lists,
// register node definitions (extensions see them first), call setup(), then build a small graph:
//   Keyframes #1 -> Passthrough #2 -> Propagate #3 -> Composite #5
//   Propagate #4 (nothing upstream; Composite #5 is never executed: the API-mode case)
// A workflow kept by an earlier page (app.saveWorkflow) is restored, as the frontend does on reload.
import { app } from "/scripts/app.js";
import { api } from "/scripts/api.js";

const NODE_DEFS = [
  {
    name: "MemVOSKeyframes", display_name: "MemVOS Keyframes",
    input: { required: { session: ["MEMVOS_SESSION"], frames: ["IMAGE"],
                         keyframes: ["STRING", { default: "", multiline: true, socketless: true }] } },
    output: ["MEMVOS_SESSION"],
  },
  { name: "StubPassthrough", display_name: "Passthrough", input: { required: { session: ["MEMVOS_SESSION"] } }, output: ["MEMVOS_SESSION"] },
  {
    name: "MemVOSPropagate", display_name: "Propagate (MemVOS)",
    input: { required: { session: ["MEMVOS_SESSION"], frames: ["IMAGE"] } },
    output: ["MEMVOS_SESSION", "MEMVOS_MASKS", "MASK", "IMAGE"],
  },
  { name: "MemVOSComposite", display_name: "Composite (MemVOS)", input: { required: { frames: ["IMAGE"], masks: ["MEMVOS_MASKS"] } }, output: ["IMAGE"] },
];

async function boot() {
  const params = new URLSearchParams(location.search);
  if (params.get("renderer") === "vue") document.body.classList.add("vue-nodes");
  const response = await fetch(api.apiURL("/extensions"));
  for (const url of await response.json()) await import(url);
  for (const def of NODE_DEFS) await app.registerNodeDef(def);
  for (const ext of app.extensions) await ext.setup?.(app);
  const keyframes = app.createNode("MemVOSKeyframes");
  const pass = app.createNode("StubPassthrough");
  const propagate = app.createNode("MemVOSPropagate");
  const lonely = app.createNode("MemVOSPropagate");
  const composite = app.createNode("MemVOSComposite");
  app.graph.connect(keyframes, 0, pass, "session");
  app.graph.connect(pass, 0, propagate, "session");
  app.graph.connect(propagate, 1, composite, "masks");
  const restored = params.get("fresh") === "1" ? (localStorage.clear(), false) : app.restoreWorkflow();
  window.stub = { app, api, keyframes, pass, propagate, lonely, composite, restored };
}

boot().then(() => { window.stubReady = true; }, (error) => { window.stubError = String(error?.stack ?? error); });
