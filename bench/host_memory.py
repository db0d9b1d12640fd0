"""This process's host memory, read from Linux's /proc (the benchmarks' one reader).

Imports nothing of the project, so that a benchmark's side that runs another project's code (the
official comparisons) can use it too. Off Linux the resident set is unknown (NaN) and the peak is
the process's lifetime peak from ``getrusage``.
"""
import resource


def _status_mib(field, pid="self"):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def rss_mib(pid="self"):
    """The resident set now (VmRSS), MiB."""
    value = _status_mib("VmRSS", pid)
    return float("nan") if value is None else value


def peak_rss_mib(pid="self"):
    """The resident set's high-water mark (VmHWM) since the process started or since
    :func:`reset_peak`, MiB."""
    value = _status_mib("VmHWM", pid)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if value is None else value


def reset_peak():
    """Start the high-water mark again from the current resident set; False where that cannot be
    done (off Linux, or /proc read-only): the peak then stays the lifetime one."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True
