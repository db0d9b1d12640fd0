// Editing a label map (one object id per source pixel, row-major Uint8Array): round brush
// strokes, filled outlines, flood fill. A pixel belongs to a shape when its centre does.
// Every operation returns the rectangle it may have changed ({x0, y0, x1, y1}, end exclusive)
// or null, so redraws and undo records stay as small as the edit.

function clipRect(map, x0, y0, x1, y1) {
  const r = { x0: Math.max(0, Math.floor(x0)), y0: Math.max(0, Math.floor(y0)),
    x1: Math.min(map.width, Math.ceil(x1)), y1: Math.min(map.height, Math.ceil(y1)) };
  return r.x0 < r.x1 && r.y0 < r.y1 ? r : null;
}

export function unionRect(a, b) {
  if (!a) return b;
  if (!b) return a;
  return { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) };
}

// The pixel rule of a brush or an eraser: paint writes `id` everywhere, erase clears only `id`.
function writer(data, id, erase) {
  return erase ? (i) => { if (data[i] === id) data[i] = 0; } : (i) => { data[i] = id; };
}

// A round brush of radius r dragged from (ax, ay) to (bx, by), in source pixel coordinates.
export function strokeSegment(map, ax, ay, bx, by, r, id, erase = false) {
  const rect = clipRect(map, Math.min(ax, bx) - r - 1, Math.min(ay, by) - r - 1, Math.max(ax, bx) + r + 1, Math.max(ay, by) + r + 1);
  if (!rect) return null;
  const put = writer(map.data, id, erase);
  const dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy, r2 = r * r;
  for (let y = rect.y0; y < rect.y1; y++) {
    const py = y + 0.5;
    for (let x = rect.x0; x < rect.x1; x++) {
      const px = x + 0.5;
      const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2)) : 0;
      const ex = px - (ax + t * dx), ey = py - (ay + t * dy);
      if (ex * ex + ey * ey <= r2) put(y * map.width + x);
    }
  }
  return rect;
}

// Fill the inside of a closed outline (points [[x, y], ...], even-odd rule).
export function fillPolygon(map, points, id, erase = false) {
  if (points.length < 3) return null;
  const ys = points.map((p) => p[1]), xs = points.map((p) => p[0]);
  const rect = clipRect(map, Math.min(...xs), Math.min(...ys), Math.max(...xs) + 1, Math.max(...ys) + 1);
  if (!rect) return null;
  const put = writer(map.data, id, erase);
  for (let y = rect.y0; y < rect.y1; y++) {
    const py = y + 0.5;
    const cuts = [];
    for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
      const [xi, yi] = points[i], [xj, yj] = points[j];
      if ((yi > py) !== (yj > py)) cuts.push(xi + ((py - yi) / (yj - yi)) * (xj - xi));
    }
    cuts.sort((a, b) => a - b);
    for (let k = 0; k + 1 < cuts.length; k += 2) {
      const from = Math.max(rect.x0, Math.ceil(cuts[k] - 0.5)), to = Math.min(rect.x1, Math.ceil(cuts[k + 1] - 0.5));
      for (let x = from; x < to; x++) put(y * map.width + x);
    }
  }
  return rect;
}

// Flood fill from (x, y): the 4-connected region of the seed's id becomes `id` (erase: the
// region must be object `id` and becomes background). Returns {rect, count} or null.
export function floodFill(map, x, y, id, erase = false) {
  x = Math.floor(x);
  y = Math.floor(y);
  if (x < 0 || y < 0 || x >= map.width || y >= map.height) return null;
  const { width, height, data } = map;
  const from = data[y * width + x];
  const to = erase ? 0 : id;
  if (from === to || (erase && from !== id)) return null;
  const stack = [y * width + x];
  data[y * width + x] = to;
  let count = 0, x0 = x, x1 = x, y0 = y, y1 = y;
  while (stack.length) {
    const i = stack.pop();
    count++;
    const px = i % width, py = (i - px) / width;
    if (px < x0) x0 = px; else if (px > x1) x1 = px;
    if (py < y0) y0 = py; else if (py > y1) y1 = py;
    if (px > 0 && data[i - 1] === from) { data[i - 1] = to; stack.push(i - 1); }
    if (px + 1 < width && data[i + 1] === from) { data[i + 1] = to; stack.push(i + 1); }
    if (py > 0 && data[i - width] === from) { data[i - width] = to; stack.push(i - width); }
    if (py + 1 < height && data[i + width] === from) { data[i + width] = to; stack.push(i + width); }
  }
  return { rect: { x0, y0, x1: x1 + 1, y1: y1 + 1 }, count };
}

export function replaceValue(map, from, to) {
  let rect = null;
  const { width, data } = map;
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== from) continue;
    data[i] = to;
    const x = i % width, y = (i - x) / width;
    rect = unionRect(rect, { x0: x, y0: y, x1: x + 1, y1: y + 1 });
  }
  return rect;
}

export function copyRect(map, rect) {
  const { x0, y0, x1, y1 } = rect;
  const w = x1 - x0, out = new Uint8Array(w * (y1 - y0));
  for (let y = y0; y < y1; y++) out.set(map.data.subarray(y * map.width + x0, y * map.width + x1), (y - y0) * w);
  return out;
}

export function pasteRect(map, rect, bytes) {
  const { x0, y0, x1, y1 } = rect;
  const w = x1 - x0;
  for (let y = y0; y < y1; y++) map.data.set(bytes.subarray((y - y0) * w, (y - y0 + 1) * w), y * map.width + x0);
}

export function idsIn(data) {
  const seen = new Uint8Array(256);
  for (let i = 0; i < data.length; i++) seen[data[i]] = 1;
  const ids = [];
  for (let id = 1; id < 256; id++) if (seen[id]) ids.push(id);
  return ids;
}

export function countOf(data, id) {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === id) n++;
  return n;
}

// Whether `map` differs inside `rect` from `before` (a full copy of the map taken earlier).
export function rectDiffers(before, map, rect) {
  if (!rect) return false;
  for (let y = rect.y0; y < rect.y1; y++) {
    for (let i = y * map.width + rect.x0, end = y * map.width + rect.x1; i < end; i++) if (before[i] !== map.data[i]) return true;
  }
  return false;
}

// Nearest-neighbour resize of a label map (a keyframe file of another size than the shot).
export function resizeLabels(map, width, height) {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(map.height - 1, Math.floor(((y + 0.5) * map.height) / height));
    for (let x = 0; x < width; x++) data[y * width + x] = map.data[sy * map.width + Math.min(map.width - 1, Math.floor(((x + 0.5) * map.width) / width))];
  }
  return { width, height, data };
}
