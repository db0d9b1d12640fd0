// Indexed PNGs in the browser, exactly: a keyframe is an 8-bit palette PNG whose pixel values are
// object ids. Canvas encoding would write RGBA and colour-manage it, so these files are written
// and read here, byte for byte (zlib through the browser's CompressionStream).
import { davisColor } from "./spec.js";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export class PngError extends Error {}

function crc32(bytes, start, end) {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function zlib(bytes, direction) {
  const stream = new Blob([bytes]).stream().pipeThrough(
    direction === "compress" ? new CompressionStream("deflate") : new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

// labels: Uint8Array of width*height object ids -> Blob of an indexed PNG with the DAVIS palette.
export async function encodeLabelPng(labels, width, height) {
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, 3, 0, 0, 0], 8); // 8 bits, palette colour, deflate, no filter method, no interlace
  const palette = new Uint8Array(768);
  for (let i = 0; i < 256; i++) palette.set(davisColor(i), i * 3);
  const raw = new Uint8Array((width + 1) * height); // each row: filter type 0, then its ids
  for (let y = 0; y < height; y++) raw.set(labels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const parts = [new Uint8Array(SIGNATURE), chunk("IHDR", header), chunk("PLTE", palette),
    chunk("IDAT", await zlib(raw, "compress")), chunk("IEND", new Uint8Array(0))];
  return new Blob(parts, { type: "image/png" });
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// An indexed (or greyscale) PNG -> {width, height, labels: Uint8Array of palette indices}.
export async function decodeLabelPng(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new PngError("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, depth = 0, colorType = -1, interlace = 0;
  const idat = [];
  for (let at = 8; at + 8 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      [depth, colorType] = [data[8], data[9]];
      interlace = data[12];
    } else if (type === "IDAT") {
      idat.push(data);
    } else if (type === "IEND") {
      break;
    }
    at += 12 + length;
  }
  if (!width || !height || !idat.length) throw new PngError("the PNG has no image data");
  if (![0, 3].includes(colorType) || ![1, 2, 4, 8].includes(depth) || interlace) {
    throw new PngError("not an indexed PNG (8-bit palette or greyscale, not interlaced)");
  }
  const raw = await zlib(new Blob(idat), "decompress");
  const stride = Math.ceil((width * depth) / 8);
  if (raw.length < (stride + 1) * height) throw new PngError("the PNG's image data is cut short");
  const rows = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = rows.subarray(y * stride, (y + 1) * stride);
    const up = y ? rows.subarray((y - 1) * stride, y * stride) : null;
    for (let x = 0; x < stride; x++) {
      const a = x ? row[x - 1] : 0, b = up ? up[x] : 0, c = up && x ? up[x - 1] : 0;
      const v = src[x];
      row[x] = filter === 0 ? v : filter === 1 ? v + a : filter === 2 ? v + b
        : filter === 3 ? v + ((a + b) >> 1) : filter === 4 ? v + paeth(a, b, c) : v;
    }
    if (filter > 4) throw new PngError(`unknown PNG row filter ${filter}`);
  }
  if (depth === 8) return { width, height, labels: rows };
  const labels = new Uint8Array(width * height);
  const perByte = 8 / depth, mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const byte = rows[y * stride + Math.floor(x / perByte)];
      labels[y * width + x] = (byte >> (8 - depth * (1 + (x % perByte)))) & mask;
    }
  }
  return { width, height, labels };
}

// A short content hash for file names (not for security): FNV-1a over the size and the ids, twice.
export function labelHash(labels, width, height) {
  let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995;
  const mix = (byte) => {
    a = Math.imul(a ^ byte, 0x01000193) >>> 0;
    b = Math.imul(b ^ byte, 0x5bd1e995) >>> 0;
    b = (b ^ (b >>> 15)) >>> 0;
  };
  for (const v of [width, height]) for (let s = 0; s < 32; s += 8) mix((v >>> s) & 0xff);
  for (let i = 0; i < labels.length; i++) mix(labels[i]);
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}
