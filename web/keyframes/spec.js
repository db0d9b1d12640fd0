// The keyframe list the Keyframes node keeps in its `keyframes` widget (format documented in
// nodes/keyframe_files.py): objects with id, name and colour; keyframes with frame, file, objects.
// Parsing is lenient where the node is strict only about what it must read, and never throws:
// a broken value becomes an empty list plus a message, so the editor can still open.

export const FORMAT = "memvos-keyframes";
export const VERSION = 1;
export const SUBFOLDER = "memvos";
export const MAX_OBJECT_ID = 255;

// DAVIS colour of palette index i: i's bits spread over the top bits of R, G and B.
export function davisColor(index) {
  let r = 0, g = 0, b = 0;
  for (let bit = 0; bit < 8; bit++) {
    r |= ((index >> (3 * bit)) & 1) << (7 - bit);
    g |= ((index >> (3 * bit + 1)) & 1) << (7 - bit);
    b |= ((index >> (3 * bit + 2)) & 1) << (7 - bit);
  }
  return [r, g, b];
}

const isId = (v) => Number.isInteger(v) && v >= 1 && v <= MAX_OBJECT_ID;

export function emptySpec() {
  return { objects: [], keyframes: new Map() };
}

// Text of the widget -> {objects: [{id, name, color}], keyframes: Map(frame -> {file, objects: Set})}.
export function parseSpec(text) {
  const spec = emptySpec();
  if (typeof text !== "string" || !text.trim()) return { spec, problem: null };
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return { spec, problem: "The keyframe list in this node is not valid JSON; saving will replace it." };
  }
  if (data?.format !== FORMAT || data?.version !== VERSION) {
    return { spec, problem: `The keyframe list is not ${FORMAT} version ${VERSION}; saving will replace it.` };
  }
  for (const o of Array.isArray(data.objects) ? data.objects : []) {
    if (!isId(o?.id) || spec.objects.some((x) => x.id === o.id)) continue;
    const color = Array.isArray(o.color) && o.color.length === 3 && o.color.every((c) => Number.isInteger(c) && c >= 0 && c <= 255)
      ? o.color : null;
    spec.objects.push({ id: o.id, name: typeof o.name === "string" ? o.name.slice(0, 100) : "", color });
  }
  for (const k of Array.isArray(data.keyframes) ? data.keyframes : []) {
    if (!Number.isInteger(k?.frame) || k.frame < 0 || typeof k.file !== "string") continue;
    const objects = new Set((Array.isArray(k.objects) ? k.objects : []).filter(isId));
    if (!objects.size) continue;
    spec.keyframes.set(k.frame, { file: k.file, objects });
    for (const id of objects) ensureObject(spec, id);
  }
  return { spec, problem: null };
}

export function ensureObject(spec, id) {
  let object = spec.objects.find((o) => o.id === id);
  if (!object) {
    object = { id, name: "", color: null };
    spec.objects.push(object);
    spec.objects.sort((a, b) => a.id - b.id);
  }
  return object;
}

export function objectColor(spec, id) {
  return spec.objects.find((o) => o.id === id)?.color ?? davisColor(id);
}

export function nextObjectId(spec) {
  for (let id = 1; id <= MAX_OBJECT_ID; id++) if (!spec.objects.some((o) => o.id === id)) return id;
  return null;
}

export function serializeSpec(spec) {
  const objects = spec.objects.map((o) => ({ id: o.id, ...(o.name ? { name: o.name } : {}), ...(o.color ? { color: o.color } : {}) }));
  const keyframes = [...spec.keyframes.entries()].sort((a, b) => a[0] - b[0])
    .map(([frame, k]) => ({ frame, file: k.file, objects: [...k.objects].sort((a, b) => a - b) }));
  return JSON.stringify({ format: FORMAT, version: VERSION, objects, keyframes });
}

// "memvos/name.png" -> {subfolder: "memvos", filename: "name.png"} for ComfyUI's /view.
export function splitFile(file) {
  const at = file.lastIndexOf("/");
  return at < 0 ? { subfolder: "", filename: file } : { subfolder: file.slice(0, at), filename: file.slice(at + 1) };
}
