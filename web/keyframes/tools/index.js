// The editor's tools, in the order of their buttons and of the help. Adding a tool: one module in
// this folder and one line here.
//
// A tool module exports a definition:
//   {name, button: its text, title: its tooltip,
//    shortcuts: [{label, help, keys: {KeyboardEvent.key: [action, argument]}}] (the first selects it),
//    create(ed) -> the tool in one editor (ed: the editor's state, editor_state.js)}
// and the tool answers, all but down optional:
//   down(x, y, event, erase)  a press on the frame shown (source pixels; erase: the eraser or the right button)
//   move(x, y, event), up(x, y, event)  the same press moving and let go
//   cursorRadius()  the pointer's circle, in source pixels (default half a pixel)
//   erases  true for a tool that erases with the left button too
//   shown()  the tool was chosen or a frame was shown with it chosen: get ready for that frame
//   cancel()  drop what is not an edit yet (on another tool, frame, object, undo, save);  busy()  has such a thing
//   actions: {name: (argument) => ...}  actions of its own (keys above, editor.act)
//   api: {...}  objects published on the editor object (editor.clickTool)
import { brush } from "./brush.js";
import { click } from "./click.js";
import { eraser } from "./eraser.js";
import { fill } from "./fill.js";
import { lasso } from "./lasso.js";

export const TOOLS = [brush, eraser, fill, lasso, click];
