// Finding the Add Annotation node that feeds a player node, and setting its frame index.
// Works on LiteGraph graphs whether `graph.links` is a plain object (classic) or a Map behind
// a proxy (current frontend), and on stand-ins that only have `links[id]` and `getNodeById`.

export const ANNOTATION_NODE = "MemVOSAddAnnotation";
export const FRAME_WIDGET = "frame_index";

export function nodeClass(node) {
  return node?.comfyClass ?? node?.type;
}

function linkById(graph, id) {
  if (typeof graph.getLink === "function") return graph.getLink(id);
  const links = graph.links;
  if (!links) return undefined;
  return typeof links.get === "function" ? links.get(id) : links[id];
}

// Breadth-first walk against the links: the first match is the nearest (fewest links away);
// between equally near ones, the earlier input wins.
export function findNearestUpstream(node, graph, wanted = ANNOTATION_NODE) {
  if (!node || !graph) return null;
  const seen = new Set([node.id]);
  let frontier = [node];
  while (frontier.length) {
    const next = [];
    for (const current of frontier) {
      for (const input of current.inputs ?? []) {
        if (input?.link == null) continue;
        const link = linkById(graph, input.link);
        const origin = link ? graph.getNodeById(link.origin_id) : null;
        if (!origin || seen.has(origin.id)) continue;
        seen.add(origin.id);
        if (nodeClass(origin) === wanted) return origin;
        next.push(origin);
      }
    }
    frontier = next;
  }
  return null;
}

function nodeName(node) {
  return `"${node.title ?? nodeClass(node)}" (#${node.id})`;
}

// Sets the frame index of the nearest upstream Add Annotation node. Returns {ok, message}.
export function pickFrameUpstream(node, graph, clipFrame) {
  const target = findNearestUpstream(node, graph);
  if (!target) {
    return {
      ok: false,
      message: `No ${ANNOTATION_NODE} node is connected upstream of this node: ` +
        "connect the Add Annotation Frame node's session to use this frame.",
    };
  }
  const widget = target.widgets?.find((w) => w.name === FRAME_WIDGET);
  if (!widget) return { ok: false, message: `${nodeName(target)} has no ${FRAME_WIDGET} widget.` };
  const linkedInput = target.inputs?.find((i) => (i.widget?.name ?? i.name) === FRAME_WIDGET && i.link != null);
  if (linkedInput) {
    return { ok: false, message: `${FRAME_WIDGET} of ${nodeName(target)} comes from a link; set frame ${clipFrame} there.` };
  }
  let value = clipFrame;
  const { min, max } = widget.options ?? {};
  if (Number.isFinite(max) && value > max) value = max;
  if (Number.isFinite(min) && value < min) value = min;
  widget.value = value;
  widget.callback?.(widget.value, undefined, target);
  target.setDirtyCanvas?.(true, true);
  graph.setDirtyCanvas?.(true, true);
  graph.change?.();
  return { ok: true, target, value, message: `${FRAME_WIDGET} of ${nodeName(target)} set to ${value}.` };
}
