// The player element: canvas, transport controls, timeline, per-object toggles and the
// "fix this frame" action. State lives in one plain object (`player.state`) so that tests and
// other extensions can read it; the element carries the player as `element.memvosPlayer`.
import { Atlas, PreviewError, fetchManifest } from "./atlas.js";
import { el, ensureStyles, rgbCss } from "./dom.js";
import { overlayLayers, paintOverlay } from "./overlay.js";
import { buildMarks, createTimeline } from "./timeline.js";

export const EMPTY_HINT =
  "No preview yet: queue the workflow from this page and the frames appear here with their masks. " +
  "(Runs made through the API show no preview.)";
const DEFAULT_OPACITY = 0.5;

function sameEntry(a, b) {
  return a.filename === b.filename && a.subfolder === b.subfolder && a.type === b.type;
}

// objectName(id): the object's name given in the Keyframes editor, or "" (then "object <id>").
export function createPlayer({ resolveURL, fixFrame, objectName = () => "" }) {
  ensureStyles();
  const state = { frame: 0, playing: false, objects: {} };
  const player = {
    state,
    manifest: null, // the checked manifest being shown, or null
    entry: null, // the {filename, subfolder, type, masks_token} it came from
    drawnFrame: -1, // the frame now on the canvas
    renders: 0,
    loading: null, // the promise of the last show()
    element: null,
    show, clear, play, pause, toggle, seek, step, setVisible, setOpacity, readLabels, destroy,
    fixFrame: fixCurrent,
    settled: () => renderPromise,
  };
  let atlas = null;
  let generation = 0;
  let rendering = false;
  let renderAgain = false;
  let renderPromise = Promise.resolve();
  let clock = null; // the running animation-frame callback; null when paused
  let clockStart = null; // {time, frame}: playback position is derived from elapsed time
  let marks = new Map();

  const canvas = el("canvas", { className: "memvos-view", attrs: { width: 320, height: 180 } });
  const ctx = canvas.getContext("2d");
  const overlayCanvas = document.createElement("canvas");
  const playButton = el("button", { className: "memvos-play", text: "\u25B6", title: "Play / pause", on: { click: toggle } });
  const backButton = el("button", { className: "memvos-back", text: "\u25C0|", title: "One frame back", on: { click: () => step(-1) } });
  const forwardButton = el("button", { className: "memvos-forward", text: "|\u25B6", title: "One frame forward", on: { click: () => step(1) } });
  const scrub = el("input", {
    className: "memvos-scrub", title: "Scrub",
    attrs: { type: "range", min: 0, max: 0, step: 1, value: 0 },
    on: { input: () => seek(Number(scrub.value)) },
  });
  const counter = el("span", { className: "memvos-counter", text: "\u2013" });
  const timeline = createTimeline({
    onSeek: seek,
    onMark: (mark) => {
      pause();
      seek(mark.frame);
      showMark(mark);
    },
  });
  const objectsRow = el("div", { className: "memvos-row memvos-objects" });
  const pickButton = el("button", {
    className: "memvos-pick", text: "Fix this frame",
    title: "Open this frame in the editor of the Keyframes node upstream, starting from these masks",
    on: { click: fixCurrent },
  });
  const status = el("div", { className: "memvos-status" });
  const info = el("div", { className: "memvos-info" });
  const hint = el("div", { className: "memvos-hint", text: EMPTY_HINT });
  const error = el("div", { className: "memvos-error", attrs: { role: "alert" } });
  const controls = [playButton, backButton, forwardButton, scrub, pickButton];

  const element = el("div", { className: "memvos-player" }, [
    canvas,
    el("div", { className: "memvos-row" }, [backButton, playButton, forwardButton, scrub, counter]),
    timeline.element,
    objectsRow,
    el("div", { className: "memvos-row" }, [pickButton, status]),
    info, hint, error,
  ]);
  player.element = element;
  element.memvosPlayer = player;
  clear();

  function setMessage(node, text) {
    node.textContent = text ?? "";
    node.hidden = !text;
  }

  // Back to the empty player, showing a hint or an error line.
  function clear({ hintText = EMPTY_HINT, errorText = "" } = {}) {
    generation++;
    pause();
    atlas?.close();
    atlas = null;
    player.manifest = null;
    player.drawnFrame = -1;
    marks = new Map();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    objectsRow.replaceChildren();
    timeline.setMarks(0, []);
    timeline.setStale(0, []);
    counter.textContent = "\u2013";
    for (const c of controls) c.disabled = true;
    setMessage(status, "");
    setMessage(info, "");
    setMessage(hint, hintText);
    setMessage(error, errorText);
  }

  // Load the preview named by a `memvos_preview` UI entry ({filename, subfolder, type}).
  async function show(entry) {
    if (!entry || typeof entry.filename !== "string") {
      clear();
      player.entry = null;
      return;
    }
    // ComfyUI re-sends a cached node's output; the same files need no reload.
    if (player.manifest && player.entry && sameEntry(entry, player.entry)) return player.loading;
    clear({ hintText: "Loading preview\u2026" });
    player.entry = { filename: entry.filename, subfolder: entry.subfolder, type: entry.type,
      masks_token: typeof entry.masks_token === "string" ? entry.masks_token : null };
    const mine = generation;
    const load = (async () => {
      try {
        const manifest = await fetchManifest(resolveURL(entry, entry.filename));
        if (mine !== generation) return;
        setup(manifest, new Atlas(manifest, (name) => resolveURL(entry, name)));
        await renderNow();
      } catch (err) {
        if (mine !== generation) return;
        const message = err instanceof PreviewError ? err.message : `The preview could not be shown: ${err?.message ?? err}`;
        console.warn("[memvos.player]", message);
        clear({ hintText: "", errorText: message });
      }
    })();
    player.loading = load;
    return load;
  }

  function setup(manifest, newAtlas) {
    atlas = newAtlas;
    player.manifest = manifest;
    const { width, height } = manifest.tile;
    canvas.width = overlayCanvas.width = width;
    canvas.height = overlayCanvas.height = height;
    state.frame = Math.min(state.frame, manifest.numFrames - 1);
    scrub.max = String(manifest.numFrames - 1);
    scrub.value = String(state.frame);
    const previous = state.objects;
    state.objects = {};
    objectsRow.replaceChildren(...manifest.objects.map((object) => {
      const kept = previous[object.id];
      state.objects[object.id] = { visible: kept?.visible ?? true, opacity: kept?.opacity ?? DEFAULT_OPACITY };
      return objectControls(object);
    }));
    const markList = buildMarks(manifest, (id) => objectName(id) || `object ${id}`);
    marks = new Map(markList.map((m) => [m.frame, m]));
    timeline.setMarks(manifest.numFrames, markList);
    timeline.setStale(manifest.numFrames, manifest.stale);
    for (const c of controls) c.disabled = false;
    setMessage(hint, manifest.objects.length ? "" : "No objects in this preview.");
    updateFrameUI();
  }

  function objectControls({ id, color }) {
    const s = state.objects[id];
    const toggleBox = el("input", {
      className: "memvos-visible", title: `Show object ${id}`,
      attrs: { type: "checkbox", "data-object": id },
      on: { change: () => setVisible(id, toggleBox.checked) },
    });
    toggleBox.checked = s.visible;
    const opacity = el("input", {
      className: "memvos-opacity", title: `Opacity of object ${id}`,
      attrs: { type: "range", min: 0, max: 1, step: 0.05, value: s.opacity, "data-object": id },
      on: { input: () => setOpacity(id, Number(opacity.value)) },
    });
    const swatch = el("span", { className: "memvos-swatch" });
    swatch.style.background = rgbCss(color);
    return el("label", { className: "memvos-object", attrs: { "data-object": id } },
      [toggleBox, swatch, el("span", { text: objectName(id) || `object ${id}`, attrs: { title: `object ${id}` } }),
        opacity]);
  }

  function updateFrameUI() {
    const manifest = player.manifest;
    if (!manifest) return;
    scrub.value = String(state.frame);
    timeline.setFrame(state.frame);
    const stale = manifest.stale.some((r) => state.frame >= r.frame && state.frame < r.frame + r.count);
    counter.textContent = `frame ${state.frame + manifest.frameOffset} \u00B7 ${state.frame + 1}/${manifest.numFrames}`
      + (stale ? " \u00B7 from before the latest change" : "");
    counter.classList.toggle("stale", stale);
    playButton.textContent = state.playing ? "\u275A\u275A" : "\u25B6";
    if (!state.playing) {
      const mark = marks.get(state.frame);
      setMessage(info, mark ? describeMark(mark) : "");
    }
  }

  function describeMark(mark) {
    return `Frame ${mark.frame + player.manifest.frameOffset}: ${mark.lines.join("; ")}`;
  }

  function showMark(mark) {
    setMessage(info, describeMark(mark));
  }

  function seek(frame) {
    if (!player.manifest) return;
    const n = player.manifest.numFrames;
    state.frame = Math.max(0, Math.min(n - 1, Math.round(Number(frame) || 0)));
    if (state.playing) clockStart = { time: performance.now(), frame: state.frame }; // play on from here
    updateFrameUI();
    requestRender();
  }

  function step(delta) {
    if (!player.manifest) return;
    pause();
    const n = player.manifest.numFrames;
    seek((state.frame + delta + n) % n);
  }

  function play() {
    if (!player.manifest || state.playing) return;
    state.playing = true;
    clockStart = { time: performance.now(), frame: state.frame };
    const tick = (now) => {
      if (!state.playing || clock !== tick) return;
      const { numFrames, fps } = player.manifest;
      const elapsed = Math.max(0, now - clockStart.time);
      const frame = (clockStart.frame + Math.floor((elapsed * fps) / 1000)) % numFrames;
      if (frame !== state.frame) {
        state.frame = frame;
        updateFrameUI();
        requestRender();
      }
      requestAnimationFrame(tick);
    };
    clock = tick;
    updateFrameUI();
    requestAnimationFrame(tick);
  }

  function pause() {
    if (!state.playing) return;
    state.playing = false;
    clock = null;
    updateFrameUI();
  }

  function toggle() {
    state.playing ? pause() : play();
  }

  function setVisible(id, visible) {
    if (!state.objects[id]) return;
    state.objects[id].visible = Boolean(visible);
    const box = objectsRow.querySelector(`input.memvos-visible[data-object="${Number(id)}"]`);
    if (box) box.checked = state.objects[id].visible;
    requestRender();
  }

  function setOpacity(id, opacity) {
    if (!state.objects[id]) return;
    state.objects[id].opacity = Math.max(0, Math.min(1, Number(opacity) || 0));
    const slider = objectsRow.querySelector(`input.memvos-opacity[data-object="${Number(id)}"]`);
    if (slider) slider.value = String(state.objects[id].opacity);
    requestRender();
  }

  function fixCurrent() {
    if (!player.manifest) return null;
    pause();
    const clipFrame = state.frame + player.manifest.frameOffset;
    const result = fixFrame(clipFrame, player.entry?.masks_token ?? null) ?? { ok: false, message: "Nothing to open." };
    setMessage(status, result.message);
    status.classList.toggle("memvos-error", !result.ok);
    return result;
  }

  // Renders run one at a time; a request during a render re-renders the latest frame afterwards.
  // `player.settled()` resolves once everything requested so far is on the canvas.
  function renderNow() {
    if (rendering) {
      renderAgain = true;
      return renderPromise;
    }
    rendering = true;
    renderPromise = (async () => {
      try {
        do {
          renderAgain = false;
          await draw(state.frame);
        } while (renderAgain);
      } finally {
        rendering = false;
      }
    })();
    return renderPromise;
  }

  function requestRender() {
    renderNow().catch((err) => console.warn("[memvos.player]", err));
  }

  async function draw(frame) {
    if (!atlas) return;
    const mine = generation;
    let tile;
    try {
      tile = await atlas.tile(frame);
    } catch (err) {
      if (mine !== generation) return;
      const message = err instanceof PreviewError ? err.message : `The preview could not be drawn: ${err?.message ?? err}`;
      console.warn("[memvos.player]", message);
      pause();
      setMessage(error, message);
      return;
    }
    if (mine !== generation || frame !== state.frame && renderAgain) return;
    const { width, height } = tile;
    ctx.globalAlpha = 1;
    ctx.drawImage(tile.frames, tile.sx, tile.sy, width, height, 0, 0, width, height);
    const octx = overlayCanvas.getContext("2d");
    const overlay = paintOverlay(octx.createImageData(width, height), atlas.readSlots(tile),
      overlayLayers(player.manifest.objects, state.objects));
    octx.putImageData(overlay, 0, 0);
    ctx.drawImage(overlayCanvas, 0, 0);
    player.drawnFrame = frame;
    player.renders++;
    atlas.prefetchAfter(frame);
  }

  // The label slots of a frame as read in the browser (for tests and tools).
  async function readLabels(frame) {
    if (!atlas) return null;
    return Array.from(atlas.readSlots(await atlas.tile(frame)));
  }

  function destroy() {
    clear({ hintText: "" });
  }

  return player;
}
