"""ComfyUI's input and output folders (``folder_paths``), with stand-ins outside ComfyUI.

ComfyUI imports ``folder_paths`` before it loads any pack, so it is looked up in ``sys.modules``
and never imported here. Outside ComfyUI the folders are under the system's temp folder.
"""
import os
import re
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


def numbered_output(prefix, what="filename_prefix"):
    """``(folder, stem)`` for new output files: ``<output>/<prefix>_00001``, numbered past every
    file or folder already named ``<name>_NNNNN...`` there, so a run never overwrites another."""
    base = inside(output_directory(), prefix, what)
    folder, name = os.path.split(base)
    if not name:
        raise ValueError(f"{what} {prefix!r} ends with '/': give a name after the folder, like 'memvos/masks'")
    try:
        os.makedirs(folder, exist_ok=True)
        entries = os.listdir(folder)
    except OSError as exc:
        raise ValueError(f"{what} {prefix!r}: cannot write into {folder} ({exc.strerror or exc}): choose a "
                         "filename_prefix inside a folder you can write to") from None
    pattern = re.compile(re.escape(name) + r"_(\d{5,})(?!\d)")
    numbers = [int(m.group(1)) for m in map(pattern.match, entries) if m]
    return folder, f"{name}_{max(numbers, default=0) + 1:05d}"
