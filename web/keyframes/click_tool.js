// The click tool: left click adds, right click (or Alt+click) subtracts, a drag draws a box. The
// selected object's mask comes from SAM 2.1's image path on the server (/memvos/click,
// nodes/click_masks.py) after each click and is shown in place as a preview; Enter accepts it into
// the frame's painted layer as one undoable step (brush and eraser work on top), Tab cycles the
// candidates of a lone (ambiguous) click, Esc drops the preview.
import { decodeLabelPng } from "./png.js";

const DRAG_PX = 4; // a press that moves less than this on screen is a click, not a box

function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes.buffer;
}

// host: {server, token(), frame(), labels() -> current label map, objectId(), preview(), status(text)}
export function createClickTool(host) {
  let prompt = null; // {frame, id, points: [[x, y, label]], box, before: Uint8Array, masks, scores, chosen}
  let press = null;
  let request = 0;
  let prepared = null; // "token/frame" whose embedding the server was asked for
  const tool = { press: () => press, prompt: () => prompt, down, move, up, accept, cancel, cycle, prepare,
    settled: Promise.resolve(), ready: Promise.resolve() };

  // The frame's embedding is most of a first click's time (seconds on a CPU): ask for it as soon as
  // the tool meets a frame, so that the first click there waits only for the mask decoder.
  function prepare() {
    const token = host.token();
    const frame = host.frame();
    const key = `${token}/${frame}`;
    if (!token || key === prepared) return tool.ready;
    prepared = key;
    tool.ready = host.server.clickPrepare(token, frame).catch((err) => {
      if (prepared === key) prepared = null; // asked again next time (weights added, run again)
      if (host.frame() === frame) host.status(err?.message ?? String(err));
    });
    return tool.ready;
  }

  function down(x, y, clientX, clientY, negative) {
    press = { x, y, clientX, clientY, negative };
  }

  // While dragging: the box outline as a polygon for the view (null when not a drag).
  function move(x, y, clientX, clientY) {
    if (!press || Math.hypot(clientX - press.clientX, clientY - press.clientY) < DRAG_PX) return null;
    return [[press.x, press.y], [x, press.y], [x, y], [press.x, y]];
  }

  function up(x, y, clientX, clientY) {
    const started = press;
    press = null;
    if (!started) return tool.settled;
    const labels = host.labels();
    if (!prompt || prompt.frame !== host.frame() || prompt.id !== host.objectId()) {
      cancel();
      prompt = { frame: host.frame(), id: host.objectId(), points: [], box: null, before: labels.data.slice() };
    }
    if (Math.hypot(clientX - started.clientX, clientY - started.clientY) >= DRAG_PX) {
      prompt.box = [Math.min(started.x, x), Math.min(started.y, y), Math.max(started.x, x), Math.max(started.y, y)];
    } else {
      prompt.points.push([started.x, started.y, started.negative ? 0 : 1]);
    }
    tool.settled = ask(prompt);
    return tool.settled;
  }

  async function ask(asked) {
    const mine = ++request;
    host.status("Click to mask: asking SAM 2.1\u2026");
    let answer;
    try {
      answer = await host.server.click(host.token(), asked.frame, { points: asked.points, box: asked.box });
    } catch (err) {
      if (mine === request) host.status(err?.message ?? String(err));
      return;
    }
    if (mine !== request || asked !== prompt) return; // a later click or a cancel overtook this answer
    asked.masks = await Promise.all(answer.masks.map(async (m) => (await decodeLabelPng(base64Bytes(m))).labels));
    asked.scores = answer.scores;
    asked.chosen = answer.best;
    show();
  }

  // The preview: the frame as it was before the first click, the object's pixels replaced by the mask.
  function show() {
    const labels = host.labels();
    const mask = prompt.masks[prompt.chosen];
    const data = labels.data;
    data.set(prompt.before);
    for (let i = 0; i < data.length; i++) {
      if (mask[i]) data[i] = prompt.id; else if (data[i] === prompt.id) data[i] = 0;
    }
    host.preview();
    const many = prompt.masks.length > 1
      ? ` \u2014 candidate ${prompt.chosen + 1} of ${prompt.masks.length} (score ${prompt.scores[prompt.chosen].toFixed(2)}; Tab: next)` : "";
    host.status(`Click to mask: ${prompt.points.length} click${prompt.points.length === 1 ? "" : "s"}` +
      `${prompt.box ? " and a box" : ""}${many}. Enter accepts, Esc drops it.`);
  }

  function cycle() {
    if (!prompt?.masks || prompt.masks.length < 2) return;
    prompt.chosen = (prompt.chosen + 1) % prompt.masks.length;
    show();
  }

  // -> {before, id} for the editor to commit as one history step, or null when nothing to accept.
  function accept() {
    const done = prompt?.masks ? prompt : null;
    prompt = null;
    request++;
    return done && { before: done.before, id: done.id };
  }

  function cancel() {
    const dropped = prompt;
    prompt = null;
    request++;
    if (dropped?.masks && dropped.frame === host.frame()) {
      host.labels().data.set(dropped.before);
      host.preview();
    }
  }

  return tool;
}
