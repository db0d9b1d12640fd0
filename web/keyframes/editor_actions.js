// Every action of the editor by name, from a key (keys.js), a button or a test (editor.act):
// [name, argument]. Each module lists its own; a tool's own actions come with the tool.
import { DISPLAY_ACTIONS } from "./editor_display.js";
import { EDIT_ACTIONS } from "./editor_edits.js";
import { NAVIGATION_ACTIONS } from "./editor_frames.js";
import { IO_ACTIONS } from "./editor_io.js";
import { OBJECT_ACTIONS } from "./editor_objects.js";
import { TOOL_ACTIONS } from "./editor_tools.js";
import { close } from "./editor_window.js";

const ACTIONS = {
  ...TOOL_ACTIONS, ...OBJECT_ACTIONS, ...EDIT_ACTIONS, ...NAVIGATION_ACTIONS, ...DISPLAY_ACTIONS, ...IO_ACTIONS,
  // Esc first drops a tool's unfinished work (the click tool's preview), then saves and closes.
  close: (ed) => {
    const busy = [...ed.tools.values()].find((tool) => tool.busy?.());
    return busy ? busy.cancel() : close(ed);
  },
};

export function runAction(ed, [name, arg]) {
  for (const tool of ed.tools.values()) {
    if (tool.actions && Object.hasOwn(tool.actions, name)) return tool.actions[name](arg);
  }
  return Object.hasOwn(ACTIONS, name) ? ACTIONS[name](ed, arg) : undefined;
}
