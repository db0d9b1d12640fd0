"""Puts the example workflows' small input media into ComfyUI's input folder, so the examples run
as loaded: core LoadVideo / LoadImageMask only list files from that folder.

Files are copied only when absent (a file of the same name is never overwritten), only inside
ComfyUI (``folder_paths`` already imported), and not at all with ``MEMVOS_NO_EXAMPLE_MEDIA=1``.
"""
import os
import shutil
import sys

from .common import LOG

MEDIA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples_workflows", "media")
PREFIX = "memvos_example_"
DISABLE_ENV = "MEMVOS_NO_EXAMPLE_MEDIA"


def media_files():
    if not os.path.isdir(MEDIA_DIR):
        return []
    return sorted(n for n in os.listdir(MEDIA_DIR) if n.startswith(PREFIX))


def install(input_dir=None):
    """Copy missing media into ``input_dir`` (default: ComfyUI's input folder); returns the names copied."""
    if input_dir is None:
        folder_paths = sys.modules.get("folder_paths")
        if folder_paths is None or os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
            return []
        input_dir = folder_paths.get_input_directory()
    copied = []
    try:
        os.makedirs(input_dir, exist_ok=True)
        for name in media_files():
            target = os.path.join(input_dir, name)
            if os.path.exists(target):
                continue
            tmp = f"{target}.part"
            shutil.copyfile(os.path.join(MEDIA_DIR, name), tmp)
            os.replace(tmp, target)
            copied.append(name)
    except OSError as exc:
        LOG.warning("MemVOS: could not copy the example media into %s (%s); copy examples_workflows/media/* "
                    "there by hand to run the example workflows", input_dir, exc)
    if copied:
        LOG.info("MemVOS: example media copied into %s: %s", input_dir, ", ".join(copied))
    return copied
