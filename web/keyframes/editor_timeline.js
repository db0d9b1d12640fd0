// The bar under the frame: the scrubber, the frame counter and the timeline's marks (painted
// keyframes, keyframes from the node's inputs, suggested frames); and which marked frame is next.
import { keyframeFrames } from "./editor_state.js";

export function frameCount(ed) {
  return ed.host.shot()?.numFrames ?? 0;
}

export function updateFrameUI(ed) {
  const { parts, state, entries, spec, host } = ed;
  const count = frameCount(ed);
  parts.scrub.max = String(Math.max(0, count - 1));
  parts.scrub.value = String(state.frame);
  const entry = entries.get(state.frame);
  parts.counter.textContent = count ? `frame ${state.frame} \u00B7 ${state.frame + 1}/${count}${entry?.dirty ? " \u25CF" : ""}` : "no frames";
  const marks = new Map();
  const mark = (frame) => {
    if (!marks.has(frame)) marks.set(frame, { frame, keyframe: false, suggestion: false, lines: [], classes: [] });
    return marks.get(frame);
  };
  for (const frame of keyframeFrames(ed)) {
    const inputs = host.shot()?.keyframes?.find((k) => k.frame === frame);
    const painted = spec.keyframes.has(frame) || entries.get(frame)?.objects.size;
    const m = mark(frame);
    if (painted) {
      m.keyframe = true;
      m.lines.push("painted keyframe");
    } else if (inputs) {
      m.classes.push("input");
      m.lines.push(`keyframe from the node's inputs (objects ${inputs.objects.join(", ")})`);
    }
  }
  for (const s of host.context().suggestions) {
    const m = mark(s.frame);
    m.suggestion = true;
    m.lines.push(...s.lines);
  }
  parts.timeline.setMarks(count, [...marks.values()].sort((a, b) => a.frame - b.frame));
  parts.timeline.setFrame(state.frame);
}

// The nearest frame of `list` after (direction > 0) or before the frame shown, or undefined.
export function neighbour(ed, list, direction) {
  const sorted = [...new Set(list)].sort((a, b) => a - b);
  return direction > 0 ? sorted.find((f) => f > ed.state.frame) : sorted.reverse().find((f) => f < ed.state.frame);
}
