// The pointer on the canvas: a press goes to the selected tool (it gets the press's moves and its
// release), the middle button or Space+drag pans, the wheel zooms around the pointer.
import { redraw } from "./editor_display.js";

export function listenPointer(ed) {
  const canvas = ed.parts.canvas;
  canvas.addEventListener("pointerdown", (event) => onPointerDown(ed, event));
  canvas.addEventListener("pointermove", (event) => onPointerMove(ed, event));
  canvas.addEventListener("pointerup", (event) => onPointerUp(ed, event));
  canvas.addEventListener("pointercancel", (event) => onPointerUp(ed, event));
  canvas.addEventListener("pointerleave", () => { ed.cursor = null; redraw(ed); });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("wheel", (event) => onWheel(ed, event), { passive: false });
}

function onPointerDown(ed, event) {
  ed.parts.canvas.setPointerCapture?.(event.pointerId);
  if (event.button === 1 || ed.spaceDown) {
    ed.gesture = { mode: "pan", x: event.clientX, y: event.clientY };
    event.preventDefault();
    return;
  }
  if (!ed.current || (event.button !== 0 && event.button !== 2)) return;
  const tool = ed.tools.get(ed.state.tool);
  const erase = tool.erases === true || event.button === 2;
  const [x, y] = ed.view.toSource(event.clientX, event.clientY);
  ed.gesture = { tool };
  tool.down(x, y, event, erase);
}

function onPointerMove(ed, event) {
  const { view, gesture } = ed;
  const [x, y] = view.toSource(event.clientX, event.clientY);
  ed.cursor = { x, y, r: ed.tools.get(ed.state.tool).cursorRadius?.() ?? 0.5 };
  if (gesture?.mode === "pan") {
    view.pan(event.clientX - gesture.x, event.clientY - gesture.y);
    gesture.x = event.clientX;
    gesture.y = event.clientY;
  } else {
    gesture?.tool.move?.(x, y, event);
  }
  redraw(ed);
}

function onPointerUp(ed, event) {
  const done = ed.gesture;
  ed.gesture = null;
  if (!done?.tool) return;
  const [x, y] = ed.view.toSource(event.clientX, event.clientY);
  done.tool.up?.(x, y, event);
}

function onWheel(ed, event) {
  event.preventDefault();
  const [sx, sy] = ed.view.toCanvas(event.clientX, event.clientY);
  ed.view.zoomAt(Math.exp(-event.deltaY * 0.0015), sx, sy);
  redraw(ed);
}
