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

// The nodes linked to `node`, nearest first (fewest links away; between equally near ones, the
// earlier slot first), walking input links (upstream) or output links (downstream).
function* breadthFirst(node, graph, upstream) {
  if (!node || !graph) return;
  const seen = new Set([node.id]);
  let frontier = [node];
  while (frontier.length) {
    const next = [];
    for (const current of frontier) {
      const ids = upstream ? (current.inputs ?? []).map((i) => i?.link) : (current.outputs ?? []).flatMap((o) => o?.links ?? []);
      for (const id of ids) {
        const link = id == null ? null : linkById(graph, id);
        const other = link ? graph.getNodeById(upstream ? link.origin_id : link.target_id) : null;
        if (!other || seen.has(other.id)) continue;
        seen.add(other.id);
        yield other;
        next.push(other);
      }
    }
    frontier = next;
  }
}

export function findNearestUpstream(node, graph, wanted = KEYFRAMES_NODE) {
  for (const other of breadthFirst(node, graph, true)) if (nodeClass(other) === wanted) return other;
  return null;
}

export function downstreamNodes(node, graph) {
  return [...breadthFirst(node, graph, false)];
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
