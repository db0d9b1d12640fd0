"""Which outputs of a node the graph uses, so that a node builds only those.

ComfyUI calls a node with its inputs and never says which of its outputs are connected; a full-size
union MASK and label map of a 2,000-frame shot nobody looks at would cost tens of GB. A pack may
rewrite each queued prompt before it is validated (the server's on-prompt handlers): ours writes,
into every node of ours that declares the hidden input :data:`LINKED`, which of the outputs it
builds only on demand (its ``LAZY_OUTPUTS``) some node links to, e.g. ``"label_map"``.

The value is one of the node's inputs, so it is part of ComfyUI's cache key as well: connecting
such an output later changes the key, the node runs again and builds it, instead of a cached
``None`` reaching the new consumer. Only the on-demand outputs count, so wiring the cheap ones
(a session, the compact masks) changes nothing; toggling an on-demand one re-runs the node's
descendants too, as any change of its inputs does. (The hidden PROMPT input would tell the node
the same at run time, but ComfyUI computes cache keys without it, so a cached node would never
learn of a new link.) Without a server (direct calls, scripts) the input is absent: every output
is built.
"""
from . import comfy_env

LINKED = "memvos_linked_outputs"
HIDDEN = {LINKED: "MEMVOS_LINKED_OUTPUTS"}


def _is_link(value):
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def mark_linked_outputs(prompt, classes):
    """Write into each of our nodes which of its on-demand outputs are linked; returns ``prompt``
    (an API prompt ``{id: {"class_type", "inputs"}}``, changed in place as the server's handlers do)."""
    # A malformed prompt (a node or its inputs not an object) is left as it is for ComfyUI's own
    # validation to refuse: this hook runs first and must not fail on it.
    nodes = {node_id: node for node_id, node in prompt.items()
             if isinstance(node, dict) and isinstance(node.get("inputs", {}), dict)}
    used = {}
    for node in nodes.values():
        for value in (node.get("inputs") or {}).values():
            if _is_link(value):
                used.setdefault(str(value[0]), set()).add(value[1])
    for node_id, node in nodes.items():
        class_type = node.get("class_type")
        cls = classes.get(class_type) if isinstance(class_type, str) else None
        if cls is None or LINKED not in cls.INPUT_TYPES().get("hidden", {}):
            continue
        names, lazy = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), set(getattr(cls, "LAZY_OUTPUTS", ()))
        slots = sorted(s for s in used.get(str(node_id), ()) if 0 <= s < len(names) and names[s] in lazy)
        node.setdefault("inputs", {})[LINKED] = ",".join(names[s] for s in slots)
    return prompt


def wanted(linked, name):
    """Whether output ``name`` is to be built: it is linked, or nobody said (``linked`` None)."""
    return linked is None or name in str(linked).split(",")


def on_prompt(json_data, mappings):
    """The server's on-prompt handler for the node classes ``mappings``: ``{"prompt": {...}, ...}``
    in, the same out."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if isinstance(prompt, dict):
        mark_linked_outputs(prompt, mappings)
    return json_data


_HANDLERS = {}  # one handler per mapping, so installing twice adds it once


def install(mappings):
    """Hook :func:`mark_linked_outputs` for the pack's node classes into ComfyUI's server
    (nothing outside one)."""
    handler = _HANDLERS.setdefault(id(mappings), lambda json_data: on_prompt(json_data, mappings))
    return comfy_env.add_prompt_handler(handler)
