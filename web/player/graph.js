// Walking the graph from a player: the Keyframes node that feeds it ("fix this frame"), and the
// nodes downstream of a Keyframes node (the players whose previews the editor uses).
// Works on LiteGraph graphs whether `graph.links` is a plain object (classic) or a Map behind
// a proxy (current frontend), and on stand-ins that only have `links[id]` and `getNodeById`.

export const KEYFRAMES_NODE = "MemVOSKeyframes";

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
export function findNearestUpstream(node, graph, wanted = KEYFRAMES_NODE) {
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

// Breadth-first walk along output links: every node downstream of `node`, nearest first.
export function downstreamNodes(node, graph) {
  const found = [];
  if (!node || !graph) return found;
  const seen = new Set([node.id]);
  let frontier = [node];
  while (frontier.length) {
    const next = [];
    for (const current of frontier) {
      for (const output of current.outputs ?? []) {
        for (const id of output?.links ?? []) {
          const link = linkById(graph, id);
          const target = link ? graph.getNodeById(link.target_id) : null;
          if (!target || seen.has(target.id)) continue;
          seen.add(target.id);
          found.push(target);
          next.push(target);
        }
      }
    }
    frontier = next;
  }
  return found;
}

function nodeName(node) {
  return `"${node.title ?? nodeClass(node)}" (#${node.id})`;
}

// "Fix this frame": open the editor of the nearest upstream Keyframes node at `clipFrame`, starting
// from the propagated masks of the run (`masksToken`) when that frame has no keyframe yet. Adds or
// updates a keyframe on that frame only. Returns {ok, message}.
export function fixFrameUpstream(node, graph, clipFrame, masksToken = null) {
  const target = findNearestUpstream(node, graph, KEYFRAMES_NODE);
  if (!target) {
    return {
      ok: false,
      message: `No MemVOS Keyframes node is connected upstream of this node: put one between New Session and ` +
        "Propagate (it holds every keyframe of the shot) to fix frames from here.",
    };
  }
  if (!target.memvosKeyframes) return { ok: false, message: `${nodeName(target)} has no editor (its extension did not load).` };
  target.memvosKeyframes.openAt(clipFrame, { masksToken });
  return { ok: true, target, message: `Frame ${clipFrame} opened in the editor of ${nodeName(target)}.` };
}
