// Turns a tile's label slots into an RGBA overlay: each visible object's pixels get its colour
// with its opacity as alpha; background and hidden objects stay transparent.

// One entry per slot (slot k is objects[k-1]); null when the object is hidden.
export function overlayLayers(objects, objectState) {
  return objects.map(({ id, color }) => {
    const s = objectState[id];
    if (!s || !s.visible || s.opacity <= 0) return null;
    return { r: color[0], g: color[1], b: color[2], a: Math.round(Math.min(1, s.opacity) * 255) };
  });
}

export function paintOverlay(imageData, slots, layers) {
  const out = imageData.data;
  for (let p = 0, q = 0; p < slots.length; p++, q += 4) {
    const slot = slots[p];
    const layer = slot ? layers[slot - 1] : null;
    if (layer) {
      out[q] = layer.r;
      out[q + 1] = layer.g;
      out[q + 2] = layer.b;
      out[q + 3] = layer.a;
    } else {
      out[q + 3] = 0;
    }
  }
  return imageData;
}
