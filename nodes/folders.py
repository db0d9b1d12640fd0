"""ComfyUI's input and output folders (``folder_paths``), with stand-ins outside ComfyUI.

ComfyUI imports ``folder_paths`` before it loads any pack, so it is looked up in ``sys.modules``
and never imported here. Outside ComfyUI the folders are under the system's temp folder.
"""
import os
import sys
import tempfile


def _folder_paths():
    return sys.modules.get("folder_paths")


def _fallback(kind):
    path = os.path.join(tempfile.gettempdir(), "memvos", kind)
    os.makedirs(path, exist_ok=True)
    return path


def output_directory():
    folder_paths = _folder_paths()
    return folder_paths.get_output_directory() if folder_paths is not None else _fallback("output")


def input_directory():
    folder_paths = _folder_paths()
    return folder_paths.get_input_directory() if folder_paths is not None else _fallback("input")


def inside(folder, relative, what):
    """``folder/relative`` for a relative path that stays inside ``folder`` (names come from widgets)."""
    relative = relative.replace("\\", "/").strip()
    if not relative or os.path.isabs(relative) or ".." in relative.split("/"):
        raise ValueError(f"{what} {relative!r} must be a relative path inside {folder!r} "
                         "(no '..', not absolute), like 'memvos/session'")
    return os.path.join(folder, *relative.split("/"))
