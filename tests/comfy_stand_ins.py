"""Stand-ins for ComfyUI in tests: the core nodes the example workflows use, and ComfyUI's modules.

* ``CORE_NODES``: the core nodes of the examples with the input specs, widget order and outputs
  of ComfyUI 0.8.0 (written down from ``nodes.py``, ``comfy_extras/nodes_video.py``,
  ``nodes_images.py``, ``nodes_mask.py``), each with a minimal implementation of the same meaning.
* ``ComfyStandIns``: fake ``folder_paths``, ``comfy.utils`` (ProgressBar) and
  ``comfy.model_management`` (interrupt, devices) over a temp folder.
* generated weights linked under an official file name, and a tiny synthetic shot for node tests.
"""
import os
import sys
import types

import numpy as np
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEDIA_DIR = os.path.join(REPO, "examples_workflows", "media")
CLIP_FRAMES_DIR = os.path.join(REPO, "tests", "fixtures", "xmem_parity", "clip", "frames")
CLIP_NAME = "memvos_example_clip.mp4"
CLIP_HW, CLIP_FPS = (108, 186), 8.0  # as examples_workflows/tools/make_media.py wrote the clip


def media_files(kind):
    """The files a core loader lists: the bundled media, and (as ComfyUI lists its input folder)
    what a test put into the stand-in input folder."""
    exts = {"video": (".mp4", ".webm", ".mov", ".mkv"), "image": (".png", ".jpg", ".jpeg", ".webp")}[kind]
    names = {n for n in os.listdir(MEDIA_DIR) if n.lower().endswith(exts)}
    folder_paths = sys.modules.get("folder_paths")
    if folder_paths is not None and hasattr(folder_paths, "get_input_directory"):
        folder = folder_paths.get_input_directory()
        names |= {n for n in os.listdir(folder) if n.lower().endswith(exts) and os.path.isfile(os.path.join(folder, n))}
    return sorted(names)


def media_path(name):
    """Where a listed file is: the stand-in input folder first, then the bundled media."""
    folder_paths = sys.modules.get("folder_paths")
    if folder_paths is not None and hasattr(folder_paths, "get_input_directory"):
        path = os.path.join(folder_paths.get_input_directory(), name)
        if os.path.isfile(path):
            return path
    return os.path.join(MEDIA_DIR, name)


# ------------------------------------------------------------------ stand-ins for core nodes

class StandInVideo:
    """What core VIDEO carries, reduced to what the examples use: a VideoFromComponents (frames
    in memory, what Create Video makes)."""

    def __init__(self, images, fps, audio=None):
        self.images, self.fps, self.audio = images, float(fps), audio

    def get_components(self):
        from fractions import Fraction
        return types.SimpleNamespace(images=self.images, audio=self.audio,
                                     frame_rate=Fraction(self.fps).limit_denominator(1001))


class StandInVideoFile(StandInVideo):
    """Load Video's VIDEO (VideoFromFile): ``get_stream_source()`` is the file's path (or a
    BytesIO); its components are what Get Video Components decodes."""

    def __init__(self, source, images=None, fps=CLIP_FPS):
        super().__init__(images, fps)
        self._source = source

    def get_stream_source(self):
        return self._source


def load_clip_frames():
    """The example clip's frames as LoadVideo + GetVideoComponents give them (the PNG sources
    of the mp4, cropped as the mp4 was), float32 ``[16,108,186,3]``."""
    names = sorted(n for n in os.listdir(CLIP_FRAMES_DIR) if n.endswith(".png"))
    h, w = CLIP_HW
    frames = [np.asarray(Image.open(os.path.join(CLIP_FRAMES_DIR, n)).convert("RGB"))[:h, :w] for n in names]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def _load_video(file):
    if file == CLIP_NAME:
        return (StandInVideoFile(os.path.join(MEDIA_DIR, CLIP_NAME), load_clip_frames(), CLIP_FPS),)
    path = media_path(file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"stand-in LoadVideo: no {file!r} in the input folder or the bundled media")
    return (StandInVideoFile(path),)  # a test's own video: only our nodes read it (from the file)


def _get_video_components(video):
    return (video.images, video.audio, float(video.fps))


def _create_video(images, fps, audio=None):
    return (StandInVideo(images, fps, audio),)


def _load_image_mask(image, channel):
    img = Image.open(media_path(image))
    if img.getbands() != ("R", "G", "B", "A"):
        img = img.convert("RGBA")
    band = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[channel]
    mask = torch.from_numpy(np.asarray(img.getchannel(band)).astype(np.float32) / 255.0)
    return ((1.0 - mask if band == "A" else mask).unsqueeze(0),)


def _load_image(image):
    img = Image.open(media_path(image))
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

        class PromptServer:
            """The server's on-prompt hook: handlers rewrite each queued prompt before validation."""
            instance = None

            def __init__(self):
                self.on_prompt_handlers = []

            def add_on_prompt_handler(self, handler):
                self.on_prompt_handlers.append(handler)

        server = types.ModuleType("server")
        server.PromptServer = PromptServer
        PromptServer.instance = PromptServer()
        self.modules = {"folder_paths": fp, "comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm,
                        "server": server}

    def check(self):
        """ComfyUI's interrupt check: raises once ``interrupt_after`` checks have passed."""
        self.checks += 1
        if self.interrupt_after is not None and self.checks > self.interrupt_after:
            raise Interrupted("processing interrupted")

    def install(self, monkeypatch):
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        return self


def link_weights(source, folder, name="XMem.pth"):
    """``folder/name`` as a hard link to the weights file ``source`` (a copy where links are
    impossible), so that no test downloads and the ~240 MB file exists once per run; returns the
    path. Never write to it: copy the file to change it."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    if not os.path.exists(path):
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


def annotated_session(nodes, frames, masks, keys=(0,)):
    """The session node tests start from: Load Model (the generated XMem.pth, CPU, fp32) -> New
    Session (internal size 32) -> Add Annotation of each object of ``masks`` at each frame of ``keys``."""
    model = nodes["MemVOSLoadModel"]().load("XMem.pth", "cpu", "fp32")[0]
    (session,) = nodes["MemVOSNewSession"]().create(model, internal_size=32)
    for frame in keys:
        for object_id, mask in masks.items():
            (session,) = nodes["MemVOSAddAnnotation"]().add(session, frames, mask, frame, object_id)
    return session
