"""Run UI-format workflows the way ComfyUI would, over our nodes and the core stand-ins.

* ``workflow_problems``: the checks the frontend and ComfyUI's validation would make on a
  UI-format file (known node types, widget values in count, order and range, link types).
* ``to_api``: UI format -> API format (``{id: {class_type, inputs}}``), as the frontend's export.
* ``Executor``: validates and runs an API prompt: only what output nodes need, in dependency
  order, one node instance per id, outputs cached by input signature like ComfyUI's cache.
"""
import copy
import inspect
import json
import sys

from comfy_stand_ins import CORE_NODES

FRONTEND_ONLY = {"Note", "MarkdownNote"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


# ------------------------------------------------------------------ node descriptions

class NodeInfo:
    """One node type as the frontend sees it: inputs in order, which are widgets, outputs."""

    def __init__(self, class_type, ours):
        self.class_type = class_type
        if class_type in ours:
            cls = ours[class_type]
            self.cls, self.spec = cls, cls.INPUT_TYPES()
            self.output_types = tuple(cls.RETURN_TYPES)
            self.output_names = tuple(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))
            self.output_node = bool(getattr(cls, "OUTPUT_NODE", False))
            self.extra_widgets, self.impl, self.core = 0, None, False
        elif class_type in CORE_NODES:
            spec, types, names, output_node, extra, impl = CORE_NODES[class_type]
            self.cls, self.spec, self.output_types, self.output_names = None, spec(), types, names
            self.output_node, self.extra_widgets, self.impl, self.core = output_node, extra, impl, True
        else:
            raise KeyError(class_type)
        self.inputs = []  # (name, type, options, optional)
        for section in ("required", "optional"):
            for name, entry in self.spec.get(section, {}).items():
                options = entry[1] if len(entry) > 1 else {}
                self.inputs.append((name, entry[0], options, section == "optional"))

    @staticmethod
    def type_name(kind):
        return "COMBO" if isinstance(kind, (list, tuple)) else kind

    def is_widget(self, kind, options):
        return self.type_name(kind) in WIDGET_TYPES and not options.get("forceInput", False)

    @property
    def widgets(self):
        return [(n, k, o) for n, k, o, _ in self.inputs if self.is_widget(k, o)]

    def input(self, name):
        return next((i for i in self.inputs if i[0] == name), None)


def node_info(class_type, ours):
    return NodeInfo(class_type, ours)


def types_match(received, expected):
    """ComfyUI's link check: equal, or comma-separated unions ("IMAGE,VIDEO") sharing a type."""
    if received == expected:
        return True
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})


def check_widget_value(info, name, kind, options, value):
    """What ComfyUI's validation would say about a widget value (None when it is fine)."""
    where = f"{info.class_type}.{name}"
    t = info.type_name(kind)
    if t == "COMBO":
        return None if value in list(kind) else f"{where}: {value!r} is not one of {list(kind)}"
    if t == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{where}: {value!r} is not an INT"
    elif t == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{where}: {value!r} is not a FLOAT"
    elif t == "BOOLEAN":
        return None if isinstance(value, bool) else f"{where}: {value!r} is not a BOOLEAN"
    elif t == "STRING":
        return None if isinstance(value, str) else f"{where}: {value!r} is not a STRING"
    if "min" in options and value < options["min"]:
        return f"{where}: {value} is below min {options['min']}"
    if "max" in options and value > options["max"]:
        return f"{where}: {value} is above max {options['max']}"
    return None


# ------------------------------------------------------------------ UI-format checks and export

def load_workflow(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def workflow_problems(workflow, ours, cnr_id="memvos"):
    """Every problem the frontend or ComfyUI's validation would have with a UI-format workflow."""
    problems = []
    for key in ("nodes", "links", "groups", "config", "extra", "version"):
        if key not in workflow:
            problems.append(f"top-level key {key!r} missing")
    if problems:
        return problems
    nodes = {n["id"]: n for n in workflow["nodes"]}
    if len(nodes) != len(workflow["nodes"]):
        problems.append("two nodes share an id")
    links = {}
    for link in workflow["links"]:
        if len(link) != 6:
            problems.append(f"link {link} is not [id, from, from_slot, to, to_slot, type]")
            continue
        links[link[0]] = link
    if workflow.get("last_link_id", 0) < max(links, default=0):
        problems.append("last_link_id is below a link id")
    if workflow.get("last_node_id", 0) < max(nodes, default=0):
        problems.append("last_node_id is below a node id")
    infos = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in FRONTEND_ONLY:
            if not isinstance(node.get("widgets_values"), list) or len(node["widgets_values"]) != 1:
                problems.append(f"node {node['id']} ({kind}) must hold its text as the one widget value")
            continue
        try:
            info = infos[node["id"]] = node_info(kind, ours)
        except KeyError:
            problems.append(f"node {node['id']}: type {kind!r} is neither ours nor a known core node")
            continue
        props = node.get("properties", {})
        want = "comfy-core" if info.core else cnr_id
        if props.get("cnr_id") != want or props.get("Node name for S&R") != kind:
            problems.append(f"node {node['id']} ({kind}): properties need cnr_id {want!r} and "
                            f"'Node name for S&R' {kind!r}, got {props}")
        for key in ("pos", "size", "inputs", "outputs", "widgets_values", "mode", "order", "flags"):
            if key not in node:
                problems.append(f"node {node['id']} ({kind}) has no {key!r}")
        widgets = info.widgets
        values = node.get("widgets_values", [])
        if len(values) != len(widgets) + info.extra_widgets:
            problems.append(f"node {node['id']} ({kind}): {len(values)} widget values for widgets "
                            f"{[w[0] for w in widgets]} (+{info.extra_widgets} frontend)")
        else:
            for (name, wkind, options), value in zip(widgets, values):
                problem = check_widget_value(info, name, wkind, options, value)
                if problem:
                    problems.append(f"node {node['id']}: {problem}")
        if len(node.get("outputs", [])) != len(info.output_types):
            problems.append(f"node {node['id']} ({kind}) lists {len(node.get('outputs', []))} outputs, "
                            f"the node has {len(info.output_types)}")
        for slot, out in enumerate(node.get("outputs", [])):
            if slot < len(info.output_types) and out.get("type") != info.output_types[slot]:
                problems.append(f"node {node['id']} output {slot} type {out.get('type')} != {info.output_types[slot]}")
            for link_id in out.get("links") or []:
                link = links.get(link_id)
                if link is None or link[1] != node["id"] or link[2] != slot:
                    problems.append(f"node {node['id']} output {slot} lists link {link_id} that does not start there")
        connected = set()
        for slot, inp in enumerate(node.get("inputs", [])):
            spec = info.input(inp["name"])
            if spec is None:
                problems.append(f"node {node['id']} ({kind}) has no input {inp['name']!r}")
                continue
            name, ikind, options, _ = spec
            if info.is_widget(ikind, options) != ("widget" in inp):
                problems.append(f"node {node['id']} input {name!r}: a widget input must carry 'widget' and a "
                                "socket input must not")
            link_id = inp.get("link")
            if link_id is None:
                continue
            link = links.get(link_id)
            if link is None or link[3] != node["id"] or link[4] != slot:
                problems.append(f"node {node['id']} input {name!r} names link {link_id} that does not end there")
                continue
            connected.add(name)
            if inp.get("type") != info.type_name(ikind) or not types_match(link[5], info.type_name(ikind)):
                problems.append(f"link {link_id} type {link[5]} does not match {kind}.{name} ({info.type_name(ikind)})")
        for name, ikind, options, optional in info.inputs:
            if not optional and not info.is_widget(ikind, options) and name not in connected:
                problems.append(f"node {node['id']} ({kind}): required input {name!r} is not connected")
    for link_id, (_, origin, slot, target, _, kind) in links.items():
        if origin not in nodes or target not in nodes:
            problems.append(f"link {link_id} joins a missing node")
            continue
        info = infos.get(origin)
        if info is not None and (slot >= len(info.output_types) or info.output_types[slot] != kind):
            problems.append(f"link {link_id} leaves {nodes[origin]['type']} output {slot} as {kind}, but that "
                            f"output is {info.output_types[slot] if slot < len(info.output_types) else 'missing'}")
    return problems


def to_api(workflow, ours):
    """UI format -> API format, as the frontend exports it (widgets by name, links as [id, slot])."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):
            continue
        info = node_info(node["type"], ours)
        inputs = {name: value for (name, _, _), value in zip(info.widgets, node["widgets_values"])}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                link = links[inp["link"]]
                inputs[inp["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


# ------------------------------------------------------------------ execution

class ValidationError(ValueError):
    pass


class Executor:
    """Runs API prompts over our node classes and the core stand-ins.

    ``cache``: a dict shared between runs, None to recompute everything. As ComfyUI's default
    ("classic") cache it keeps each node id's last outputs with their input signature (class,
    fingerprint, literal inputs, ancestors' signatures) and reuses them while it matches.
    """

    def __init__(self, ours, cache=None, objects=None):
        self.ours = ours
        self.cache = cache
        # One node object per id; pass the same dict to keep them across runs, as ComfyUI does.
        self.instances = {} if objects is None else objects
        self.executed = []

    def validate(self, prompt):
        for node_id, node in prompt.items():
            try:
                info = node_info(node["class_type"], self.ours)
            except KeyError:
                raise ValidationError(f"node {node_id}: unknown type {node['class_type']!r}") from None
            for name, kind, options, optional in info.inputs:
                value = node["inputs"].get(name)
                if value is None:
                    if not optional:
                        raise ValidationError(f"node {node_id} ({info.class_type}): required input {name!r} missing")
                    continue
                if isinstance(value, list):
                    source = prompt.get(value[0])
                    if source is None:
                        raise ValidationError(f"node {node_id}: input {name!r} links to missing node {value[0]}")
                    out_types = node_info(source["class_type"], self.ours).output_types
                    if value[1] >= len(out_types) or not types_match(out_types[value[1]], info.type_name(kind)):
                        raise ValidationError(f"node {node_id}: input {name!r} ({info.type_name(kind)}) linked to "
                                              f"{source['class_type']} output {value[1]}")
                elif info.is_widget(kind, options):
                    problem = check_widget_value(info, name, kind, options, value)
                    if problem:
                        raise ValidationError(problem)
            validate = getattr(info.cls, "VALIDATE_INPUTS", None)
            if validate is not None:  # as ComfyUI: with the literal values it names, before anything runs
                names = inspect.signature(validate).parameters
                literal = {k: v for k, v in node["inputs"].items() if k in names and not isinstance(v, list)}
                answer = validate(**literal)
                if answer is not True:
                    raise ValidationError(f"node {node_id} ({info.class_type}): {answer}")

    def _order(self, prompt):
        wanted, stack = [], [i for i, n in prompt.items() if node_info(n["class_type"], self.ours).output_node]
        seen = set()

        def visit(node_id):
            if node_id in seen:
                return
            seen.add(node_id)
            for value in prompt[node_id]["inputs"].values():
                if isinstance(value, list):
                    visit(value[0])
            wanted.append(node_id)

        for node_id in sorted(stack, key=int):
            visit(node_id)
        return wanted

    def _signature(self, node_id, prompt, info, signatures):
        literal, linked = [], []
        for name, value in sorted(prompt[node_id]["inputs"].items()):
            if isinstance(value, list):
                linked.append((name, signatures[value[0]], value[1]))
            else:
                literal.append((name, json.dumps(value)))
        fingerprint = None
        if info.cls is not None and hasattr(info.cls, "IS_CHANGED"):
            widgets = {k: (None if isinstance(v, list) else v) for k, v in prompt[node_id]["inputs"].items()}
            fingerprint = info.cls.IS_CHANGED(**widgets)
        return (info.class_type, repr(fingerprint), tuple(literal), tuple(linked))

    def run(self, prompt):
        """Execute; returns ``(outputs, ui)`` keyed by node id. As ComfyUI's server, the prompt first
        goes through the on-prompt handlers packs registered (when a server stand-in is installed)."""
        prompt = server_handlers_applied(prompt)
        self.validate(prompt)
        outputs, ui, signatures = {}, {}, {}
        for node_id in self._order(prompt):
            node = prompt[node_id]
            info = node_info(node["class_type"], self.ours)
            signature = self._signature(node_id, prompt, info, signatures)
            signatures[node_id] = signature
            cached = self.cache.get(node_id) if self.cache is not None else None
            if cached is not None and cached[0] == signature:
                outputs[node_id], ui[node_id] = cached[1], cached[2]
                continue
            kwargs = {k: (outputs[v[0]][v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()}
            self.executed.append(node_id)
            if info.impl is not None:
                result = info.impl(**kwargs)
            else:
                instance = self.instances.get(node_id)
                if not isinstance(instance, info.cls):
                    instance = self.instances[node_id] = info.cls()
                result = getattr(instance, info.cls.FUNCTION)(**kwargs)
            node_ui = None
            if isinstance(result, dict):
                node_ui = result.get("ui")
                result = result.get("result", ())
            if not isinstance(result, tuple) or len(result) != len(info.output_types):
                raise AssertionError(f"{info.class_type} returned {type(result).__name__} of "
                                     f"{len(result) if isinstance(result, tuple) else '?'} outputs, declares "
                                     f"{len(info.output_types)}")
            outputs[node_id], ui[node_id] = result, node_ui
            if self.cache is not None:
                self.cache[node_id] = (signature, result, node_ui)
        return outputs, ui


def server_handlers_applied(prompt):
    """``prompt`` passed through the server's on-prompt handlers, as POST /prompt does (a copy)."""
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    handlers = list(getattr(instance, "on_prompt_handlers", ()))
    if not handlers:
        return prompt
    data = {"prompt": copy.deepcopy(prompt)}
    for handler in handlers:
        data = handler(data)
    return data["prompt"]


def outputs_of(cls, returned):
    """What ComfyUI takes from a node's return value: the result tuple, checked against
    RETURN_TYPES (a dict return carries it under "result" beside the "ui" data)."""
    result = returned.get("result", ()) if isinstance(returned, dict) else returned
    assert isinstance(result, tuple) and len(result) == len(cls.RETURN_TYPES), (
        f"{cls.__name__} returned {result!r:.80} for RETURN_TYPES {cls.RETURN_TYPES}")
    return result
