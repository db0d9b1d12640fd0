"""Outputs never land in or over an input: the one check the command line and the batch share.

Paths are compared resolved (``os.path.realpath``: absolute, ``..`` folded, symlinks followed,
also for paths that do not exist yet), so ``--out shot/../shot/frames`` or a symlink to the
frames folder is caught like the folder itself. An output clashes with an input when it is the
input itself or lies inside it (a mask folder inside the frames folder would add files that are
then read as frames; a session file inside the masks folder, likewise).
"""
import os


def resolved(path):
    return os.path.realpath(os.fspath(path))


def lands_on(output, input_path):
    """Whether ``output`` (a file or folder to be written) is ``input_path`` or lies inside it."""
    out, source = resolved(output), resolved(input_path)
    if out == source:
        return True
    try:
        return os.path.commonpath([out, source]) == source
    except ValueError:  # different drives (Windows)
        return False


def clash(outputs, inputs):
    """The first ``(output name, output path, input name, input path)`` where an output lands on
    an input, or None. ``outputs``/``inputs``: ``{name: path or None}`` (None: not given)."""
    for out_name, out_path in outputs.items():
        if out_path is None:
            continue
        for in_name, in_path in inputs.items():
            if in_path is not None and lands_on(out_path, in_path):
                return out_name, out_path, in_name, in_path
    return None


def describe_clash(found):
    """One line for a :func:`clash`: which output, which input, and the fix."""
    out_name, out_path, in_name, in_path = found
    where = "is" if resolved(out_path) == resolved(in_path) else "lies inside"
    return (f"{out_name} {out_path} {where} {in_name} {in_path} (compared with links followed): writing there "
            f"would overwrite or add to an input; give {out_name} a path outside the inputs")
