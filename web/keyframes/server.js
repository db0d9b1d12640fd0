// What the editor asks ComfyUI for: frames and masks at the source size (the pack's read-only
// routes, nodes/routes.py), keyframe files (ComfyUI's /view), and uploads (ComfyUI's own
// /upload/image into input/memvos/). `api` is ComfyUI's scripts/api.js object.
import { decodeLabelPng, encodeLabelPng, labelHash } from "./png.js";
import { SUBFOLDER, splitFile } from "./spec.js";

export class ServerError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

async function get(api, route, what) {
  let response;
  try {
    response = await api.fetchApi(route, { cache: "no-store" });
  } catch (error) {
    throw new ServerError(`Could not reach ComfyUI for ${what} (${error.message}).`);
  }
  if (!response.ok) {
    let reason = `HTTP ${response.status}`;
    try {
      reason = (await response.json()).error ?? reason;
    } catch { /* not JSON: keep the status */ }
    throw new ServerError(`${what[0].toUpperCase()}${what.slice(1)} could not be loaded: ${reason}`, response.status);
  }
  return response;
}

const query = (params) => new URLSearchParams(params).toString();

export function createServer(api) {
  return {
    // Frame `frame` of a shot published by a Keyframes node run, as an ImageBitmap.
    async frame(token, frame) {
      const response = await get(api, `/memvos/frame?${query({ token, frame })}`, `frame ${frame}`);
      return createImageBitmap(await response.blob());
    },

    // Object ids of `frame` from a run (propagated masks or merged keyframes): {width, height, labels}.
    async labels(token, frame) {
      const response = await get(api, `/memvos/labels?${query({ token, frame })}`, `the masks of frame ${frame}`);
      return decodeLabelPng(await response.arrayBuffer());
    },

    // Click to mask (nodes/click_masks.py): {masks: [PNG base64], scores, best, weights, width, height}.
    async click(token, frame, prompt) {
      const response = await get(api, `/memvos/click?${query({ token, frame, prompt: JSON.stringify(prompt) })}`,
        `the click mask of frame ${frame}`);
      return response.json();
    },

    // Compute frame `frame`'s click embedding ahead of the first click: {ready, weights, width, height}.
    async clickPrepare(token, frame) {
      const response = await get(api, `/memvos/click?${query({ token, frame, prepare: 1 })}`,
        `getting frame ${frame} ready for clicks`);
      return response.json();
    },

    // A keyframe file ("memvos/name.png", relative to the input folder).
    async keyframe(file) {
      const { subfolder, filename } = splitFile(file);
      const response = await get(api, `/view?${query({ filename, subfolder, type: "input" })}`, `keyframe file ${file}`);
      return decodeLabelPng(await response.arrayBuffer());
    },

    // Upload one keyframe as an indexed PNG; returns its path inside the input folder. The name
    // holds the frame and a hash of the ids: an edit never overwrites a file, and uploading the
    // same content twice gives the same file (ComfyUI keeps one copy of identical uploads).
    async upload(frame, labels, width, height) {
      const name = `keyframe_f${String(frame).padStart(6, "0")}_${labelHash(labels, width, height)}.png`;
      const body = new FormData();
      body.append("image", await encodeLabelPng(labels, width, height), name);
      body.append("type", "input");
      body.append("subfolder", SUBFOLDER);
      let response;
      try {
        response = await api.fetchApi("/upload/image", { method: "POST", body });
      } catch (error) {
        throw new ServerError(`Could not reach ComfyUI to save frame ${frame}'s keyframe (${error.message}).`);
      }
      if (!response.ok) throw new ServerError(`ComfyUI refused frame ${frame}'s keyframe (HTTP ${response.status}).`, response.status);
      const saved = await response.json();
      return saved.subfolder ? `${saved.subfolder}/${saved.name}` : saved.name;
    },
  };
}
