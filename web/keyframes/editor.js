// The keyframe editor: a window over the whole page (so it behaves the same in the classic canvas
// and in the Vue "Nodes 2.0" renderer) where the artist paints each object's mask on any frame of
// the shot at the source size. Edits stay in memory until saved; saving uploads one indexed PNG
// per changed keyframe and writes the node's keyframe list. State is in `editor.state` and the
// frames being edited in `editor.entries`, readable by tests and other extensions.
//
// This module assembles the editor object; the rest is one module per concern, all sharing one
// state object (editor_state.js): the window (editor_window.js, its elements editor_dom.js), the
// shot's frames (editor_frames.js), painting steps (editor_edits.js), the tools (editor_tools.js,
// tools/), the pointer (editor_pointer.js), keys (keys.js), actions by name (editor_actions.js),
// the side panel (editor_objects.js), the timeline (editor_timeline.js), the status lines and the
// canvas (editor_display.js), saving (editor_io.js).
import { runAction } from "./editor_actions.js";
import { showRunError, sourceToClient } from "./editor_display.js";
import { goTo, setShot } from "./editor_frames.js";
import { save } from "./editor_io.js";
import { createEditorState, isDirty } from "./editor_state.js";
import { createTools } from "./editor_tools.js";
import { close, open, openAt } from "./editor_window.js";

// host: {server, title(), readSpec(), writeSpec(text), shot(), loadFrames(), context(), runError(),
//   misfit(), misfitDropped(), closed()}
//   runError(): the last run's error of this node, or null; misfit(): {frames, message} of the
//   keyframes painted on other footage (the node refused them), or null
//   shot(): {token, numFrames, width, height, keyframes: [{frame, objects, sources}]} or null
//   context(): {suggestions: [{frame, lines}], masksToken(frame)} from the players downstream
export function createEditor(host) {
  const ed = createEditorState(host);

  // Resolves once the frame being loaded, a save and a close under way are done.
  async function settled() {
    await ed.pending;
    await ed.savingPromise?.catch(() => {});
    await ed.closing;
  }

  const editor = {
    state: ed.state, entries: ed.entries, history: ed.history,
    get element() { return ed.element; },
    open: (frame) => open(ed, frame),
    openAt: (frame, options) => openAt(ed, frame, options),
    close: () => close(ed),
    save: () => save(ed),
    goTo: (frame) => goTo(ed, frame),
    setShot: () => setShot(ed),
    isDirty: () => isDirty(ed),
    settled,
    act: (action) => runAction(ed, action),
    current: () => ed.current,
    sourceToClient: (x, y) => sourceToClient(ed, x, y),
    showRunError: (text) => showRunError(ed, text),
  };
  ed.editor = editor;
  ed.act = editor.act;
  ed.goTo = editor.goTo;
  createTools(ed);
  for (const tool of ed.tools.values()) Object.assign(editor, tool.api);
  return editor;
}
