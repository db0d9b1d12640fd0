// What the editor shows besides the side panel and the timeline: the status and error lines, the
// message over the stage, the canvas (drawn once per animation frame), and the display actions.

export const errorText = (err) => err?.message ?? String(err);

export function setMessage(node, text) {
  node.textContent = text ?? "";
  node.hidden = !text;
}

export function setStatus(ed, text) {
  setMessage(ed.parts.status, text);
}

// The message over the frame (no shot yet, the frame could not be fetched), "" hides it.
export function showMessage(ed, text) {
  const { parts, host } = ed;
  parts.message.querySelector(".memvos-ed-message-text").textContent = text;
  parts.message.hidden = !text;
  parts.drop.hidden = !host.misfit?.();
}

// The node's last run failed: its error here, above the painting (ComfyUI's own dialog opens
// under this window), in place of "Running this node...".
export function showRunError(ed, text) {
  const { parts, host, state } = ed;
  if (!parts) return;
  parts.drop.hidden = !host.misfit?.();
  if (!text) return;
  if (parts.status.textContent.startsWith("Running this node")) setStatus(ed, "");
  setMessage(parts.error, text);
  if (state.open && !host.shot()) showMessage(ed, text);
}

export function redraw(ed) {
  if (ed.drawQueued || !ed.view) return;
  ed.drawQueued = true;
  requestAnimationFrame(() => {
    ed.drawQueued = false;
    const { state } = ed;
    if (!state.open) return;
    ed.view.draw({ overlay: state.overlay, opacity: state.opacity, ghost: state.reference,
      cursor: ed.gesture?.mode === "pan" ? null : ed.cursor, lasso: ed.outline });
  });
}

// Where source pixel (x, y) is on the screen (for tests and tools driving the editor).
export function sourceToClient(ed, x, y) {
  const box = ed.parts.canvas.getBoundingClientRect();
  return [box.left + ed.view.ox + x * ed.view.scale, box.top + ed.view.oy + y * ed.view.scale];
}

export const DISPLAY_ACTIONS = {
  overlay: (ed) => { ed.state.overlay = !ed.state.overlay; ed.parts.overlay.checked = ed.state.overlay; return redraw(ed); },
  reference: (ed) => { ed.state.reference = !ed.state.reference; ed.parts.reference.checked = ed.state.reference; return redraw(ed); },
  fit: (ed) => { ed.view.fit(); return redraw(ed); },
  zoom: (ed, factor) => {
    ed.view.zoomAt(factor, ed.parts.canvas.clientWidth / 2, ed.parts.canvas.clientHeight / 2);
    return redraw(ed);
  },
  help: (ed) => { ed.state.help = !ed.state.help; ed.parts.help.hidden = !ed.state.help; },
};
