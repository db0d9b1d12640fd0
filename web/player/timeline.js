// The timeline bar under the scrub slider: keyframes and suggested frames as clickable marks,
// hatched bands over frames computed before the latest keyframe change (kept by a span re-run),
// plus a playhead. Clicking the bar seeks; clicking a mark jumps there and reports its reasons.
import { el } from "./dom.js";

const byId = (id) => `object ${id}`;

function describeSuggestion(s, nameOf) {
  const who = s.objectId == null ? "suggested" : `suggested for ${nameOf(s.objectId)}`;
  let line = s.reason ? `${who}: ${s.reason}` : who;
  if (s.score != null) line += ` (score ${s.score.toFixed(2)})`;
  if (s.detail) line += ` \u2014 ${s.detail}`;
  return line;
}

// frame -> {frame, keyframe: bool, suggestion: bool, lines: [text]}, sorted by frame. nameOf(id):
// how an object is called (its name from the Keyframes editor, else "object <id>").
export function buildMarks(manifest, nameOf = byId) {
  const marks = new Map();
  const at = (frame) => {
    if (!marks.has(frame)) marks.set(frame, { frame, keyframe: false, suggestion: false, lines: [] });
    return marks.get(frame);
  };
  for (const k of manifest.keyframes) {
    const mark = at(k.frame);
    mark.keyframe = true;
    mark.lines.push(k.objects.length ? `keyframe (${k.objects.map(nameOf).join(", ")})` : "keyframe");
  }
  for (const s of manifest.suggestions) {
    const mark = at(s.frame);
    mark.suggestion = true;
    mark.lines.push(describeSuggestion(s, nameOf));
  }
  return [...marks.values()].sort((a, b) => a.frame - b.frame);
}

export function createTimeline({ onSeek, onMark }) {
  const playhead = el("div", { className: "memvos-playhead" });
  const title = "Click to seek; marks are keyframes (yellow) and suggested frames (cyan)";
  const element = el("div", { className: "memvos-timeline", title }, [playhead]);
  let numFrames = 0;
  let markButtons = [];
  let staleBands = [];

  // A stale band must not take the clicks meant for the bar (seek): the bar's handler only
  // answers clicks on itself, so the bands ignore pointer events (CSS).
  const span = (frame, count) => [`${(frame / Math.max(1, numFrames)) * 100}%`, `${(count / Math.max(1, numFrames)) * 100}%`];

  element.addEventListener("pointerdown", (event) => {
    if (event.target !== element || numFrames < 1) return;
    const box = element.getBoundingClientRect();
    const fraction = (event.clientX - box.left) / Math.max(1, box.width);
    onSeek(Math.max(0, Math.min(numFrames - 1, Math.floor(fraction * numFrames))));
  });

  const position = (frame) => `${((frame + 0.5) / Math.max(1, numFrames)) * 100}%`;

  return {
    element,
    setMarks(frames, marks) {
      numFrames = frames;
      for (const button of markButtons) button.remove();
      // No frames (the editor before its shot loads): nowhere to put a mark or the playhead.
      playhead.style.display = numFrames < 1 ? "none" : "";
      markButtons = (numFrames < 1 ? [] : marks).map((mark) => {
        const kinds = [mark.keyframe ? "key" : "", mark.suggestion ? "suggest" : "", ...(mark.classes ?? [])].filter(Boolean);
        const button = el("button", {
          className: `memvos-marker ${kinds.join(" ")}`,
          title: mark.lines.join("\n"),
          attrs: { "data-frame": mark.frame, "aria-label": `frame ${mark.frame}` },
          on: {
            pointerdown: (event) => event.stopPropagation(),
            click: (event) => {
              event.stopPropagation();
              onMark(mark);
            },
          },
        });
        button.style.left = position(mark.frame);
        element.append(button);
        return button;
      });
    },
    setStale(frames, ranges) {
      numFrames = frames;
      for (const band of staleBands) band.remove();
      element.title = ranges.length ? `${title}; hatched: masks computed before the latest keyframe change` : title;
      staleBands = ranges.map((r) => {
        const band = el("div", { className: "memvos-stale", attrs: { "data-frame": r.frame, "data-count": r.count } });
        [band.style.left, band.style.width] = span(r.frame, r.count);
        element.insertBefore(band, playhead);
        return band;
      });
    },
    setFrame(frame) {
      playhead.style.left = position(frame);
    },
  };
}
