"""Save Session / Load Session: the session bundle as a ``.safetensors`` file (tensors and JSON, no code)."""
import os

from .common import MODEL, SESSION
from .folders import within, inside, numbered_output, output_directory, readable_path
from .inputs import Input, input_types, takes_declared
from .model_nodes import check_model
from .session_nodes import check_session
from ..memvos_core.session import Session

SUFFIX = ".session.safetensors"
EXAMPLE = f"memvos/session_00001{SUFFIX}"


def next_session_path(prefix):
    """``<output>/<prefix>_00001.session.safetensors``, numbered past the files already there."""
    folder, stem = numbered_output(prefix)
    return os.path.join(folder, stem + SUFFIX)


def find_session_file(name):
    """A path relative to ComfyUI's output folder (where Save Session writes), else to its input
    folder or a folder listed for MemVOS; an absolute path only inside one of those."""
    name = (name or "").strip()
    if not name:
        raise ValueError("session_file is empty: give the file Save Session wrote, like "
                         f"'memvos/session_00001{SUFFIX}' (relative to ComfyUI's output folder)")
    output = os.path.abspath(output_directory())
    if os.path.isabs(name) and within(os.path.normpath(name), output):
        candidates = [os.path.normpath(name)]
    elif os.path.isabs(name):
        candidates = [readable_path(name, "session_file", EXAMPLE)]
    else:
        candidates = [inside(output, name, "session_file"), readable_path(name, "session_file", EXAMPLE)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ValueError(f"session_file {name!r} was not found in ComfyUI's output or input folder: give a path "
                     "relative to ComfyUI's output folder, as Save Session reports it")


class MemVOSSaveSession:
    DESCRIPTION = ("Saves the session (keyframes, settings and the memory to continue from) into ComfyUI's output "
                   f"folder as a {SUFFIX} file, to continue later with Load Session.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("session_file",)
    OUTPUT_TOOLTIPS = ("The saved file, relative to ComfyUI's output folder (Load Session takes it).",)

    INPUTS = (
        Input("session", SESSION, tooltip="The session to save."),
        Input("filename_prefix", "STRING", "memvos/session", "Path and name inside the output folder; a number "
              f"and '{SUFFIX}' are appended."),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @takes_declared(INPUTS)
    def save(self, session, filename_prefix):
        check_session(session)
        path = next_session_path(filename_prefix)
        session.save(path, what=f"filename_prefix {filename_prefix!r}")
        relative = os.path.relpath(path, output_directory()).replace(os.sep, "/")
        return {"ui": {"text": [relative]}, "result": (relative,)}


class MemVOSLoadSession:
    DESCRIPTION = ("Loads a session saved by Save Session, for the same model weights it was made with (another "
                   "model is refused). Continue annotating or propagating from it.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "load"
    RETURN_TYPES = (SESSION,)
    RETURN_NAMES = ("session",)
    OUTPUT_TOOLTIPS = ("The loaded session.",)

    INPUTS = (
        Input("model", MODEL, tooltip="The model the session was made with (from MemVOS Load Model)."),
        Input("session_file", "STRING", EXAMPLE, "The file, relative to ComfyUI's output folder (as Save Session "
              "reports it) or its input folder."),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @classmethod
    def IS_CHANGED(cls, session_file="", **_):
        try:
            path = find_session_file(session_file)
        except ValueError:
            return f"missing:{session_file}"
        stat = os.stat(path)
        return f"{path}|{stat.st_mtime_ns}|{stat.st_size}"

    @takes_declared(INPUTS)
    def load(self, model, session_file):
        check_model(model)
        return (Session.load(find_session_file(session_file), model),)


NODE_CLASS_MAPPINGS = {"MemVOSSaveSession": MemVOSSaveSession, "MemVOSLoadSession": MemVOSLoadSession}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSSaveSession": "MemVOS Save Session",
                              "MemVOSLoadSession": "MemVOS Load Session"}
