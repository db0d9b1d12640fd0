// The editor's picture: the frame at the source size, the labels being painted as a coloured
// overlay, a reference outline (the propagated or an input keyframe's masks), the brush cursor and
// a lasso path; with zoom and pan. Source pixel (x, y) sits at screen (ox + x*scale, oy + y*scale).

function offscreen(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

export function createView(canvas) {
  const ctx = canvas.getContext("2d");
  const view = { width: 0, height: 0, scale: 1, ox: 0, oy: 0, frame: null, overlay: null, ghost: null };
  let overlayData = null;

  view.setSize = (width, height) => {
    if (width === view.width && height === view.height) return;
    Object.assign(view, { width, height });
    view.overlay = offscreen(width, height);
    overlayData = view.overlay.getContext("2d").createImageData(width, height);
    view.ghost = null;
    view.fit();
  };

  view.resize = () => {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
      return true;
    }
    return false;
  };

  view.fit = () => {
    view.resize();
    if (!view.width) return;
    const dpr = window.devicePixelRatio || 1;
    view.scale = Math.min(canvas.width / view.width, canvas.height / view.height) / dpr;
    view.ox = (canvas.width / dpr - view.width * view.scale) / 2;
    view.oy = (canvas.height / dpr - view.height * view.scale) / 2;
  };

  // Zoom by `factor` keeping the source point under (sx, sy) (CSS pixels in the canvas) in place.
  view.zoomAt = (factor, sx, sy) => {
    const scale = Math.max(0.02, Math.min(64, view.scale * factor));
    view.ox = sx - ((sx - view.ox) * scale) / view.scale;
    view.oy = sy - ((sy - view.oy) * scale) / view.scale;
    view.scale = scale;
  };

  view.pan = (dx, dy) => {
    view.ox += dx;
    view.oy += dy;
  };

  view.toSource = (clientX, clientY) => {
    const box = canvas.getBoundingClientRect();
    return [(clientX - box.left - view.ox) / view.scale, (clientY - box.top - view.oy) / view.scale];
  };

  view.toCanvas = (clientX, clientY) => {
    const box = canvas.getBoundingClientRect();
    return [clientX - box.left, clientY - box.top];
  };

  // Repaint the overlay from `labels` inside `rect` (all of it when null); colors: Map id -> [r, g, b].
  view.paintLabels = (labels, colors, rect = null) => {
    if (!overlayData) return;
    const { x0, y0, x1, y1 } = rect ?? { x0: 0, y0: 0, x1: view.width, y1: view.height };
    const out = overlayData.data, w = view.width;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = y * w + x, q = i * 4, id = labels.data[i];
        const c = id ? colors.get(id) : null;
        if (c) {
          out[q] = c[0]; out[q + 1] = c[1]; out[q + 2] = c[2]; out[q + 3] = 255;
        } else {
          out[q + 3] = 0;
        }
      }
    }
    view.overlay.getContext("2d").putImageData(overlayData, 0, 0, x0, y0, x1 - x0, y1 - y0);
  };

  // A reference drawn under the painting: each object's outline and a faint fill.
  view.setGhost = (labels, colors) => {
    if (!labels) {
      view.ghost = null;
      return;
    }
    const { width: w, height: h, data } = labels;
    view.ghost = offscreen(w, h);
    const gctx = view.ghost.getContext("2d");
    const image = gctx.createImageData(w, h);
    const out = image.data;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x, id = data[i];
        if (!id) continue;
        const c = colors.get(id) ?? [255, 255, 255];
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || data[i - 1] !== id || data[i + 1] !== id
          || data[i - w] !== id || data[i + w] !== id;
        const q = i * 4;
        out[q] = c[0]; out[q + 1] = c[1]; out[q + 2] = c[2]; out[q + 3] = edge ? 255 : 60;
      }
    }
    gctx.putImageData(image, 0, 0);
  };

  view.draw = ({ overlay = true, opacity = 0.5, ghost = true, cursor = null, lasso = null } = {}) => {
    view.resize();
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!view.width) return;
    ctx.setTransform(dpr * view.scale, 0, 0, dpr * view.scale, dpr * view.ox, dpr * view.oy);
    ctx.imageSmoothingEnabled = view.scale < 2; // past 2x, show the pixels being painted
    if (view.frame) ctx.drawImage(view.frame, 0, 0, view.width, view.height);
    else {
      ctx.fillStyle = "#333";
      ctx.fillRect(0, 0, view.width, view.height);
    }
    ctx.imageSmoothingEnabled = false;
    if (ghost && view.ghost) ctx.drawImage(view.ghost, 0, 0);
    if (overlay && view.overlay) {
      ctx.globalAlpha = opacity;
      ctx.drawImage(view.overlay, 0, 0);
      ctx.globalAlpha = 1;
    }
    ctx.lineWidth = 1.5 / view.scale;
    if (lasso && lasso.length > 1) {
      ctx.strokeStyle = "#fff";
      ctx.setLineDash([4 / view.scale, 4 / view.scale]);
      ctx.beginPath();
      lasso.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (cursor) {
      ctx.strokeStyle = "rgba(255,255,255,0.9)";
      ctx.beginPath();
      ctx.arc(cursor.x, cursor.y, Math.max(cursor.r, 0.5), 0, Math.PI * 2);
      ctx.stroke();
    }
  };

  return view;
}
