"""Writing a file atomically, with one clear line when the disk says no.

The file is written under a hidden ``.<name>.<random>.part`` name in the target's folder and
renamed over the target only once complete: a crash, a full disk or a cancel never leaves half
a file under the real name (and every front end removes ``.*.part`` leftovers). A failure
becomes one ``error`` (a ValueError by default) that names the file, the reason and the fix.
"""
import errno
import os
import re
import tempfile


from ..error_text import error_detail

TMP_STEM = 64  # characters of the target's name kept in the temporary name (a long name stays valid)


class WriteError(ValueError):
    """A file could not be written; the message names it and the fix."""


def os_error_code(exc):
    """The errno behind ``exc``: an OSError's own, or the one safetensors' Rust I/O error quotes."""
    if isinstance(exc, OSError):
        return exc.errno
    found = re.search(r"code: (\d+)", str(exc))
    return int(found.group(1)) if found else None


def _reason(exc):
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    code = os_error_code(exc)
    return os.strerror(code) if code is not None else error_detail(exc)


def fix_for(code):
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "the disk is full: free some space there or write elsewhere"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "the folder cannot be written (read-only disk or no permission): write elsewhere"
    if code == errno.ENAMETOOLONG:
        return "the name is too long for the file system: choose a shorter one"
    return "check that the folder exists and can be written"


def is_write_failure(exc):
    """OSError, or safetensors' error for an I/O failure while saving."""
    return isinstance(exc, OSError) or (type(exc).__name__ == "SafetensorError" and os_error_code(exc) is not None)


def write_atomic(path, write, what=None, then="", error=WriteError):
    """``write(temporary_path)`` then rename to ``path``. ``what``: the input to name first (e.g.
    ``"--save-session"``); ``then``: words appended to the fix; ``error``: the exception class."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:TMP_STEM]}.", suffix=".part", dir=folder)
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass
        if is_write_failure(exc):
            head = f"{what}: " if what else ""
            raise error(f"{head}could not write {path} ({_reason(exc)}): {fix_for(os_error_code(exc))}{then}") \
                from None
        raise
    return path
