// Choosing the tool and the brush size; the tools themselves are in tools/ (registry: tools/index.js).
import { brushRadius, cancelTools, toolShown } from "./editor_state.js";
import { redraw } from "./editor_display.js";
import { TOOLS } from "./tools/index.js";

// ed.tools: name -> the tool in this editor.
export function createTools(ed) {
  ed.tools = new Map(TOOLS.map((tool) => [tool.name, tool.create(ed)]));
}

export function setTool(ed, name) {
  if (!ed.tools.has(name)) return;
  cancelTools(ed, name);
  ed.state.tool = name;
  for (const b of ed.parts.tools) b.classList.toggle("active", b.dataset.tool === name);
  if (ed.current) toolShown(ed);
}

export function setSize(ed, size) {
  const { state, parts } = ed;
  state.size = Math.max(1, Math.min(400, Math.round(size)));
  parts.size.value = String(Math.min(200, state.size));
  parts.sizeText.textContent = `${state.size} px`;
  if (ed.cursor) ed.cursor.r = brushRadius(ed);
  redraw(ed);
}

export const TOOL_ACTIONS = {
  tool: (ed, name) => setTool(ed, name),
  size: (ed, step) => setSize(ed, ed.state.size * (step > 0 ? 1.25 : 0.8) + step),
};
