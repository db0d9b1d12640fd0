"""Run UI-format workflows the way ComfyUI would, with our nodes and small stand-ins for core nodes.

* ``CORE_NODES``: the core nodes the examples use, with the input specs, widget order and
  outputs of ComfyUI 0.8.0 (written down from ``nodes.py``, ``comfy_extras/nodes_video.py``,
  ``nodes_images.py``, ``nodes_mask.py``), each with a minimal stand-in implementation.
* ``workflow_problems``: the checks the frontend and ComfyUI's validation would make on a
  UI-format file (known node types, widget values in count, order and range, link types).
* ``to_api``: UI format -> API format (``{id: {class_type, inputs}}``), as the frontend's export.
* ``Executor``: validates and runs an API prompt: only what output nodes need, in dependency
  order, one node instance per id, outputs cached by input signature like ComfyUI's cache.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEDIA_DIR = os.path.join(REPO, "examples_workflows", "media")
CLIP_FRAMES_DIR = os.path.join(REPO, "tests", "fixtures", "xmem_parity", "clip", "frames")
CLIP_NAME = "memvos_example_clip.mp4"
CLIP_HW, CLIP_FPS = (108, 186), 8.0  # as examples_workflows/tools/make_media.py wrote the clip
FRONTEND_ONLY = {"Note", "MarkdownNote"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def media_files(kind):
    exts = {"video": (".mp4", ".webm", ".mov"), "image": (".png", ".jpg", ".jpeg", ".webp")}[kind]
    return sorted(n for n in os.listdir(MEDIA_DIR) if n.lower().endswith(exts))


# ------------------------------------------------------------------ stand-ins for core nodes

class StandInVideo:
    """What core VIDEO carries, reduced to what the examples use."""

    def __init__(self, images, fps, audio=None):
        self.images, self.fps, self.audio = images, float(fps), audio


def load_clip_frames():
    """The example clip's frames as LoadVideo + GetVideoComponents give them (the PNG sources
    of the mp4, cropped as the mp4 was), float32 ``[16,108,186,3]``."""
    names = sorted(n for n in os.listdir(CLIP_FRAMES_DIR) if n.endswith(".png"))
    h, w = CLIP_HW
    frames = [np.asarray(Image.open(os.path.join(CLIP_FRAMES_DIR, n)).convert("RGB"))[:h, :w] for n in names]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def _load_video(file):
    if file != CLIP_NAME:
        raise FileNotFoundError(f"stand-in LoadVideo knows only {CLIP_NAME}, not {file!r}")
    return (StandInVideo(load_clip_frames(), CLIP_FPS),)


def _get_video_components(video):
    return (video.images, video.audio, float(video.fps))


def _create_video(images, fps, audio=None):
    return (StandInVideo(images, fps, audio),)


def _load_image_mask(image, channel):
    img = Image.open(os.path.join(MEDIA_DIR, image))
    if img.getbands() != ("R", "G", "B", "A"):
        img = img.convert("RGBA")
    band = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[channel]
    mask = torch.from_numpy(np.asarray(img.getchannel(band)).astype(np.float32) / 255.0)
    return ((1.0 - mask if band == "A" else mask).unsqueeze(0),)


def _load_image(image):
    img = Image.open(os.path.join(MEDIA_DIR, image))
    rgb = torch.from_numpy(np.asarray(img.convert("RGB")).astype(np.float32) / 255.0)[None]
    if "A" in img.getbands():
        mask = 1.0 - torch.from_numpy(np.asarray(img.getchannel("A")).astype(np.float32) / 255.0)
    else:
        mask = torch.zeros(64, 64)
    return (rgb, mask.unsqueeze(0))


def _image_from_batch(image, batch_index, length):
    batch_index = min(image.shape[0] - 1, batch_index)
    length = min(image.shape[0] - batch_index, length)
    return (image[batch_index:batch_index + length].clone(),)


def _mask_to_image(mask):
    return (mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3),)


def _saver(kind):
    def save(**inputs):
        return {"ui": {"saved": [{"kind": kind, **inputs}]}}
    return save


def _spec(required, optional=None):
    return {"required": required, **({"optional": optional} if optional else {})}


# name -> (input spec as INPUT_TYPES gives it, output types, output names, is output node,
#          extra trailing widget values the frontend adds (the upload button), implementation)
CORE_NODES = {
    "LoadVideo": (lambda: _spec({"file": (media_files("video"), {"video_upload": True})}),
                  ("VIDEO",), ("VIDEO",), False, 1, _load_video),
    "GetVideoComponents": (lambda: _spec({"video": ("VIDEO",)}),
                           ("IMAGE", "AUDIO", "FLOAT"), ("images", "audio", "fps"), False, 0, _get_video_components),
    "CreateVideo": (lambda: _spec({"images": ("IMAGE",), "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0,
                                                                           "step": 1.0})},
                                  {"audio": ("AUDIO",)}),
                    ("VIDEO",), ("VIDEO",), False, 0, _create_video),
    "SaveVideo": (lambda: _spec({"video": ("VIDEO",), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                                 "format": (["auto", "mp4"], {"default": "auto"}),
                                 "codec": (["auto", "h264"], {"default": "auto"})}),
                  (), (), True, 0, _saver("video")),
    "LoadImageMask": (lambda: _spec({"image": (media_files("image"), {"image_upload": True}),
                                     "channel": (["alpha", "red", "green", "blue"],)}),
                      ("MASK",), ("MASK",), False, 1, _load_image_mask),
    "LoadImage": (lambda: _spec({"image": (media_files("image"), {"image_upload": True})}),
                  ("IMAGE", "MASK"), ("IMAGE", "MASK"), False, 1, _load_image),
    "SaveImage": (lambda: _spec({"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}),
                  (), (), True, 0, _saver("images")),
    "PreviewImage": (lambda: _spec({"images": ("IMAGE",)}), (), (), True, 0, _saver("preview")),
    "MaskToImage": (lambda: _spec({"mask": ("MASK",)}), ("IMAGE",), ("IMAGE",), False, 0, _mask_to_image),
    "ImageFromBatch": (lambda: _spec({"image": ("IMAGE",),
                                      "batch_index": ("INT", {"default": 0, "min": 0, "max": 4095}),
                                      "length": ("INT", {"default": 1, "min": 1, "max": 4096})}),
                       ("IMAGE",), ("IMAGE",), False, 0, _image_from_batch),
}


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
            if link[5] != inp.get("type") or link[5] != info.type_name(ikind):
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

    def __init__(self, ours, cache=None):
        self.ours = ours
        self.cache = cache
        self.instances = {}
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
                    if value[1] >= len(out_types) or out_types[value[1]] != info.type_name(kind):
                        raise ValidationError(f"node {node_id}: input {name!r} ({info.type_name(kind)}) linked to "
                                              f"{source['class_type']} output {value[1]}")
                elif info.is_widget(kind, options):
                    problem = check_widget_value(info, name, kind, options, value)
                    if problem:
                        raise ValidationError(problem)

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
        """Execute; returns ``(outputs, ui)`` keyed by node id."""
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


# ------------------------------------------------------------------ ComfyUI stand-ins for a test

class Interrupted(Exception):
    """Plays ComfyUI's InterruptProcessingException."""


class ComfyStandIns:
    """Fake ``folder_paths``, ``comfy.utils`` and ``comfy.model_management`` modules over a temp
    folder, recording progress updates and interrupt checks; ``interrupt_after`` makes the n-th
    interrupt check raise, as ComfyUI's cancel button does."""

    def __init__(self, root):
        import types
        self.root = str(root)
        self.dirs = {k: os.path.join(self.root, k) for k in ("models", "input", "output", "temp")}
        for path in self.dirs.values():
            os.makedirs(path, exist_ok=True)
        self.progress, self.checks, self.interrupt_after = [], 0, None
        self.intermediate = torch.device("cpu")

        fp = types.ModuleType("folder_paths")
        fp.models_dir = self.dirs["models"]
        fp.folder_names_and_paths = {}
        fp.get_temp_directory = lambda: self.dirs["temp"]
        fp.get_output_directory = lambda: self.dirs["output"]
        fp.get_input_directory = lambda: self.dirs["input"]

        def add_model_folder_path(name, path, is_default=False):
            paths, exts = fp.folder_names_and_paths.setdefault(name, ([], set()))
            if path not in paths:
                paths.insert(0, path) if is_default else paths.append(path)

        def get_filename_list(name):
            paths, exts = fp.folder_names_and_paths[name]
            found = set()
            for folder in paths:
                for base, _, files in os.walk(folder):
                    for f in files:
                        if not exts or os.path.splitext(f)[1] in exts:
                            found.add(os.path.relpath(os.path.join(base, f), folder).replace(os.sep, "/"))
            return sorted(found)

        fp.add_model_folder_path = add_model_folder_path
        fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths[name][0])
        fp.get_filename_list = get_filename_list

        stand_ins = self

        class ProgressBar:
            def __init__(self, total):
                self.total, self.current = total, 0

            def update_absolute(self, value, total=None, preview=None):
                self.current = value
                self.total = total if total is not None else self.total
                stand_ins.progress.append((value, self.total))
                stand_ins.check()

            def update(self, value):
                self.update_absolute(self.current + value)

        utils = types.ModuleType("comfy.utils")
        utils.ProgressBar = ProgressBar
        mm = types.ModuleType("comfy.model_management")
        mm.throw_exception_if_processing_interrupted = self.check
        mm.get_torch_device = lambda: torch.device("cpu")
        mm.intermediate_device = lambda: self.intermediate
        mm.unet_offload_device = lambda: torch.device("cpu")
        mm.should_use_bf16 = lambda device=None: False
        mm.should_use_fp16 = lambda device=None: False
        comfy = types.ModuleType("comfy")
        comfy.utils, comfy.model_management = utils, mm
        self.modules = {"folder_paths": fp, "comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm}

    def check(self):
        """ComfyUI's interrupt check: raises once ``interrupt_after`` checks have passed."""
        self.checks += 1
        if self.interrupt_after is not None and self.checks > self.interrupt_after:
            raise Interrupted("processing interrupted")

    def install(self, monkeypatch):
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        return self


def write_synthetic_weights(folder, synthetic_state_dict, name="XMem.pth", shared_dir=None):
    """Generated XMem weights saved under an official name, so no test ever downloads.
    With ``shared_dir`` the file is written there once and hard-linked (or copied) into ``folder``."""
    path = os.path.join(folder, name)
    if os.path.isfile(path):
        return path
    if shared_dir is None:
        torch.save(synthetic_state_dict(), path)
        return path
    source = write_synthetic_weights(shared_dir, synthetic_state_dict, name)
    try:
        os.link(source, path)
    except OSError:
        import shutil
        shutil.copyfile(source, path)
    return path


def tiny_clip(num_frames=6, height=24, width=40, seed=0):
    """A small shot for node tests: two textured squares moving over a noisy background.
    Returns ``(frames [T,H,W,3] float, masks {object_id: [T,H,W] float})``."""
    gen = torch.Generator().manual_seed(seed)
    frames = 0.35 + 0.1 * torch.rand(num_frames, height, width, 3, generator=gen)
    masks = {1: torch.zeros(num_frames, height, width), 2: torch.zeros(num_frames, height, width)}
    size = max(4, height // 3)
    for t in range(num_frames):
        for object_id, (y, x, colour) in {1: (2, 2 + t, (0.9, 0.3, 0.1)),
                                          2: (height - size - 2, width - size - 2 - t, (0.1, 0.4, 0.9))}.items():
            frames[t, y:y + size, x:x + size] = torch.tensor(colour)
            masks[object_id][t, y:y + size, x:x + size] = 1.0
    return frames, masks


def outputs_of(cls, returned):
    """What ComfyUI takes from a node's return value: the result tuple, checked against
    RETURN_TYPES (a dict return carries it under "result" beside the "ui" data)."""
    result = returned.get("result", ()) if isinstance(returned, dict) else returned
    assert isinstance(result, tuple) and len(result) == len(cls.RETURN_TYPES), (
        f"{cls.__name__} returned {result!r:.80} for RETURN_TYPES {cls.RETURN_TYPES}")
    return result
