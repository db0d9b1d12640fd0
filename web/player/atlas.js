// Reads a preview written by nodes/preview.py: the JSON manifest and its atlas pages (JPEG
// frames, grayscale PNG label slots). Pages load on demand and only a few stay decoded, so a long
// clip never holds every frame in the browser at once.

export const MANIFEST_FORMAT = "memvos-preview";
export const MANIFEST_VERSION = 1;
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

export class PreviewError extends Error {}

export async function fetchManifest(url) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (error) {
    throw new PreviewError(`Could not reach ComfyUI for the preview (${error.message}).`);
  }
  if (response.status === 404) {
    throw new PreviewError(
      "The preview files are gone (ComfyUI restarted or its temp folder was cleaned): run the workflow again.");
  }
  if (!response.ok) throw new PreviewError(`The preview could not be loaded (HTTP ${response.status}).`);
  let data;
  try {
    data = await response.json();
  } catch {
    throw new PreviewError("The preview manifest is not valid JSON: run the workflow again.");
  }
  return checkManifest(data);
}

function int(value, what, min = 0, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PreviewError(`The preview manifest is broken: ${what} is ${JSON.stringify(value)}.`);
  }
  return value;
}

function fileName(value, what) {
  if (typeof value !== "string" || !FILE_NAME.test(value) || value.includes("..")) {
    throw new PreviewError(`The preview manifest is broken: ${what} is not a plain file name.`);
  }
  return value;
}

function text(value) {
  return value == null ? "" : String(value);
}

// Returns a normalised copy; anything the player relies on is checked here, once.
export function checkManifest(m) {
  if (!m || typeof m !== "object" || m.format !== MANIFEST_FORMAT) {
    throw new PreviewError("This is not a MemVOS preview manifest.");
  }
  if (m.version !== MANIFEST_VERSION) {
    throw new PreviewError(
      `Preview format version ${JSON.stringify(m.version)} is not supported by this player ` +
      `(it reads version ${MANIFEST_VERSION}): update ComfyUI-MemVOS and reload the page.`);
  }
  const numFrames = int(m.num_frames, "num_frames", 1);
  const fps = Number(m.fps);
  if (!Number.isFinite(fps) || fps <= 0) throw new PreviewError("The preview manifest is broken: fps is not positive.");
  const tile = { width: int(m.tile?.width, "tile width", 1, 4096), height: int(m.tile?.height, "tile height", 1, 4096) };
  if (m.label_encoding !== "slot") throw new PreviewError("The preview manifest uses an unknown label encoding.");
  const objects = (Array.isArray(m.objects) ? m.objects : []).slice(0, 255).map((o, k) => ({
    id: int(o?.id, `object ${k} id`, 1),
    color: (Array.isArray(o?.color) && o.color.length === 3 ? o.color : [255, 255, 255])
      .map((c) => Math.max(0, Math.min(255, Number(c) | 0))),
  }));
  let expectedFirst = 0;
  const pages = (Array.isArray(m.pages) ? m.pages : []).map((p, k) => {
    const page = {
      frames: fileName(p?.frames, `page ${k} frames`),
      labels: fileName(p?.labels, `page ${k} labels`),
      firstFrame: int(p?.first_frame, `page ${k} first_frame`),
      count: int(p?.count, `page ${k} count`, 1),
      cols: int(p?.cols, `page ${k} cols`, 1),
      rows: int(p?.rows, `page ${k} rows`, 1),
    };
    if (page.firstFrame !== expectedFirst || page.cols * page.rows < page.count) {
      throw new PreviewError(`The preview manifest is broken: page ${k} does not follow the one before.`);
    }
    expectedFirst += page.count;
    return page;
  });
  if (expectedFirst !== numFrames) throw new PreviewError("The preview manifest is broken: pages do not cover the clip.");
  const inClip = (f) => Number.isInteger(f) && f >= 0 && f < numFrames;
  const keyframes = (Array.isArray(m.keyframes) ? m.keyframes : []).filter((k) => inClip(k?.frame)).map((k) => ({
    frame: k.frame,
    objects: (Array.isArray(k.objects) ? k.objects : []).filter(Number.isInteger),
  }));
  const suggestions = (Array.isArray(m.suggestions) ? m.suggestions : []).filter((s) => inClip(s?.frame)).map((s) => ({
    frame: s.frame,
    objectId: Number.isInteger(s.object_id) ? s.object_id : null,
    reason: text(s.reason),
    score: Number.isFinite(s.score) ? s.score : null,
    detail: text(s.detail),
  }));
  // Frames whose masks a span re-run kept from an earlier run (computed before the latest change).
  const stale = (Array.isArray(m.stale) ? m.stale : []).filter((r) => inClip(r?.frame) && Number.isInteger(r?.count) && r.count > 0)
    .map((r) => ({ frame: r.frame, count: Math.min(r.count, numFrames - r.frame) }));
  const frameOffset = Number.isInteger(m.frame_offset) && m.frame_offset >= 0 ? m.frame_offset : 0;
  return { numFrames, fps, frameOffset, tile, objects, pages, keyframes, suggestions, stale };
}

async function loadBitmap(url, options) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new PreviewError(`A preview page could not be fetched (${error.message}).`);
  }
  if (!response.ok) {
    throw new PreviewError(`A preview page is missing (HTTP ${response.status}): run the workflow again.`);
  }
  try {
    return await createImageBitmap(await response.blob(), options);
  } catch {
    throw new PreviewError("A preview page could not be decoded: run the workflow again.");
  }
}

export class Atlas {
  constructor(manifest, urlFor, { maxPages = 6 } = {}) {
    this.manifest = manifest;
    this.urlFor = urlFor;
    this.maxPages = maxPages;
    this.pages = new Map(); // page index -> Promise<{frames, labels}>, in least-recently-used order
    this.scratch = null;
  }

  pageIndexOf(frame) {
    const pages = this.manifest.pages;
    for (let k = 0; k < pages.length; k++) {
      if (frame < pages[k].firstFrame + pages[k].count) return k;
    }
    return pages.length - 1;
  }

  load(pageIndex) {
    let pending = this.pages.get(pageIndex);
    if (pending) {
      this.pages.delete(pageIndex); // re-insert: most recently used goes last
    } else {
      const page = this.manifest.pages[pageIndex];
      pending = Promise.all([
        loadBitmap(this.urlFor(page.frames)),
        // Labels are data, not a picture: no colour management may touch their bytes.
        loadBitmap(this.urlFor(page.labels), { colorSpaceConversion: "none", premultiplyAlpha: "none" }),
      ]).then(([frames, labels]) => ({ frames, labels }));
      pending.catch(() => this.pages.delete(pageIndex));
    }
    this.pages.set(pageIndex, pending);
    this.evict();
    return pending;
  }

  evict() {
    while (this.pages.size > this.maxPages) {
      const [oldest, pending] = this.pages.entries().next().value;
      this.pages.delete(oldest);
      pending.then(closePage, () => {});
    }
  }

  // Where frame `frame` sits: the decoded page bitmaps and the tile's rectangle in them.
  async tile(frame) {
    const pageIndex = this.pageIndexOf(frame);
    const page = this.manifest.pages[pageIndex];
    const bitmaps = await this.load(pageIndex);
    const { width, height } = this.manifest.tile;
    const cell = frame - page.firstFrame;
    return { ...bitmaps, sx: (cell % page.cols) * width, sy: Math.floor(cell / page.cols) * height, width, height };
  }

  prefetchAfter(frame) {
    const pageIndex = this.pageIndexOf(frame);
    const page = this.manifest.pages[pageIndex];
    if (pageIndex + 1 < this.manifest.pages.length && frame - page.firstFrame >= page.count * 0.6) {
      this.load(pageIndex + 1).catch(() => {});
    }
  }

  // The label slot of every tile pixel (row-major Uint8Array), read back exactly.
  readSlots(tile) {
    const { width, height } = tile;
    if (!this.scratch || this.scratch.width !== width || this.scratch.height !== height) {
      this.scratch = document.createElement("canvas");
      this.scratch.width = width;
      this.scratch.height = height;
    }
    const ctx = this.scratch.getContext("2d", { willReadFrequently: true });
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(tile.labels, tile.sx, tile.sy, width, height, 0, 0, width, height);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const slots = new Uint8Array(width * height);
    for (let p = 0, q = 0; p < slots.length; p++, q += 4) slots[p] = rgba[q];
    return slots;
  }

  close() {
    for (const pending of this.pages.values()) pending.then(closePage, () => {});
    this.pages.clear();
  }
}

function closePage({ frames, labels }) {
  frames.close?.();
  labels.close?.();
}
