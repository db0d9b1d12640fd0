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


# Folders besides the input folder whose files nodes may read (a shared shot library, say):
# a ``memvos_inputs:`` entry in ComfyUI's extra_model_paths.yaml (one folder per line), and the
# environment variable, folders separated by os.pathsep (":" on Linux and macOS, ";" on Windows).
READABLE_FOLDERS_KEY = "memvos_inputs"
READABLE_FOLDERS_ENV = "MEMVOS_INPUT_DIRS"


def readable_roots():
    """The folders node paths may point into: ComfyUI's input folder first, then the listed ones."""
    roots = [input_directory()]
    folder_paths = _folder_paths()
    listed = getattr(folder_paths, "folder_names_and_paths", {}).get(READABLE_FOLDERS_KEY) if folder_paths else None
    if listed:
        roots += list(listed[0])
    roots += [p for p in os.environ.get(READABLE_FOLDERS_ENV, "").split(os.pathsep) if p.strip()]
    return list(dict.fromkeys(os.path.abspath(os.path.expanduser(r.strip())) for r in roots))


def within(path, root):
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # another drive (Windows)
        return False


def readable_path(name, what, example="shots/shot_010"):
    """Where a node reads ``name`` (a widget's text): a path relative to the input folder (or, when
    it is not there, to each listed folder in turn), or an absolute path inside one of them. Any
    other path is refused before anything is looked up, so the message tells nothing about what
    exists outside those folders. Links inside them are followed: a link in the input folder is
    how a user shows a node a folder elsewhere."""
    text = (name or "").strip().strip('"')
    roots = readable_roots()
    allowed = (f"ComfyUI's input folder{' or the folders listed for MemVOS' if len(roots) > 1 else ''} "
               f"({READABLE_FOLDERS_KEY} in extra_model_paths.yaml, or ${READABLE_FOLDERS_ENV})")
    if not text:
        raise ValueError(f"{what} is empty: give a path inside {allowed}, like {example!r}")
    _no_control_characters(text, what)
    clean = text.replace("\\", "/") if os.sep == "/" else text
    if os.path.isabs(clean):
        path = os.path.normpath(clean)
        if any(within(path, root) for root in roots):
            return path
        raise ValueError(f"{what} {text!r} is outside {allowed}: nodes read only there; put the files there "
                         f"(or a link to them), or list their folder for MemVOS")
    candidates = [inside(root, clean, what, example) for root in roots]
    return next((c for c in candidates if os.path.exists(c)), candidates[0])


def _no_control_characters(text, what):
    """A NUL (which the OS refuses with a bare ValueError) or another control character in a path."""
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"{what} {text!r} holds the control character {bad!r}: type the path without it")


def inside(folder, relative, what, example="memvos/session"):
    """``folder/relative`` for a relative path that stays inside ``folder`` (names come from widgets)."""
    relative = relative.replace("\\", "/").strip()
    _no_control_characters(relative, what)
    if not relative or os.path.isabs(relative) or ".." in relative.split("/"):
        raise ValueError(f"{what} {relative!r} must be a relative path inside {folder!r} "
                         f"(no '..', not absolute), like {example!r}")
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
