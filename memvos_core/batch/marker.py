"""``<out>/memvos-done.json``: the record that a shot's output folder is complete.

Written atomically, after every output file, so its presence means the shot finished. A rerun
skips a shot only when its marker describes the same job: the same settings, the same inputs
(frames by name and size, masks by content) and the same weights (sha256 of the file), and the
output folder still holds the frames it lists. Anything else runs the shot again.
"""
import hashlib
import json
import os
import socket
import time
from pathlib import Path

from .. import shot as single
from ..media_io.json_input import parse_json
from ..media_io.media import IMAGE_EXTENSIONS
from ..weights import file_sha256

MARKER_NAME = "memvos-done.json"
MARKER_VERSION = 1

# Options that say where or how a shot runs, not what it produces; frames, masks and weights
# enter the marker by content instead of by path, so moving a project does not redo its shots.
NOT_SETTINGS = frozenset({"frames", "masks", "out", "weights", "models_dir", "device", "quiet",
                          "resume", "cache_dir", "checkpoint_every", "progress"})

# Shot states before running (see :func:`shot_state`).
DONE, INTERRUPTED, CHANGED, NEW = "done", "interrupted", "changed", "new"


def marker_path(out):
    return Path(out) / MARKER_NAME


def settings(args):
    """The options that shape a shot's masks, as JSON values (``--set`` as a mapping, last wins)."""
    values = {}
    for key, value in sorted(vars(args).items()):
        if key in NOT_SETTINGS or key.startswith("_"):
            continue
        if key == "set":
            value = dict(sorted(_setting_pair(t) for t in value))
        elif isinstance(value, tuple):
            value = list(value)
        values[key] = value
    return values


def _setting_pair(text):
    key, _, value = text.partition("=")
    return key.strip(), value.strip()


def frames_signature(path):
    """Frames by name and size: cheap for thousands of frames, and survives copying (mtimes don't)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        listing = hashlib.sha256()
        total = 0
        for f in files:
            size = f.stat().st_size
            total += size
            listing.update(f"{f.name}\0{size}\n".encode())
        return {"count": len(files), "bytes": total, "listing_sha256": listing.hexdigest()[:16]}
    return {"file": path.name, "bytes": path.stat().st_size}


def masks_signature(folder):
    """Masks by content: an artist fixing a keyframe mask must get the shot redone."""
    return {p.name: file_sha256(p)[:16] for p in sorted(Path(folder).glob("*.png"))}


_weights_cache = {}


def weights_sha256(args, download=False):
    """sha256 of the weights file the shot uses, or None when it is not on this machine yet."""
    path = single.weights_path(args, download=download)
    if path is None:
        return None
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _weights_cache:  # hundreds of shots share one checkpoint: hash it once
        _weights_cache[key] = file_sha256(path)
    return _weights_cache[key]


def describe(args, weights_digest):
    """What a marker records about the job (compared field by field on a rerun)."""
    return {"settings": settings(args),
            "inputs": {"frames": frames_signature(args.frames), "masks": masks_signature(args.masks)},
            "weights": {"file": Path(args.weights).name, "sha256": weights_digest}}


def read_marker(out):
    try:
        data = parse_json(marker_path(out).read_text(encoding="utf-8"), "the marker")
    except (OSError, ValueError):  # JSONInputError included: a damaged marker reruns the shot
        return None
    return data if isinstance(data, dict) else None


def shot_state(args):
    """DONE (skip), INTERRUPTED (outputs but no marker), CHANGED (a marker for another job) or NEW."""
    out = Path(args.out)
    marker = read_marker(out)
    if marker is None:
        started = out.is_dir() and any(out.iterdir())
        return INTERRUPTED if started else NEW
    try:
        digest = weights_sha256(args)
        job = describe(args, digest)
    except (OSError, *single.user_errors()):  # inputs gone, weights unreadable: the run says why
        return CHANGED
    same = (marker.get("version") == MARKER_VERSION and digest is not None
            and all(marker.get(k) == v for k, v in job.items()))
    if same and _outputs_present(out, marker.get("frames")):
        return DONE
    return CHANGED


def _outputs_present(out, frames):
    if not isinstance(frames, int):
        return False
    return sum(1 for _ in out.glob("*.png")) >= frames


def remove_marker(out):
    """Called before a shot (re)starts: from then on the folder is not a finished shot."""
    try:
        marker_path(out).unlink()
    except FileNotFoundError:
        pass


def write_marker(args, frames, seconds):
    """Record the finished shot; atomically, so a reader sees the whole marker or none."""
    record = {"version": MARKER_VERSION,
              **describe(args, weights_sha256(args)),
              "frames": frames,
              "seconds": round(seconds, 3),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "host": socket.gethostname()}
    path = marker_path(args.out)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return record
