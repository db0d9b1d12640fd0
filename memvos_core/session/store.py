"""Per-frame propagation results on disk, so host memory stays flat however long the shot.

A store is a folder with one small file per frame and *area* (``result``: final frames;
``backward``: backward-pass frames waiting for the forward pass of ``both``). A file holds the
frame's object probabilities at internal resolution as uint16, zlib level 1 (about 10x smaller
than raw, ~5 ms for a 480p frame with 2 objects), and the ids of the objects the pass knew.
Compression and writing happen on one writer thread behind a short queue, so the device does not
wait for the disk and at most a few frames are held in RAM. Files are written under a hidden
``.part`` name and renamed, so a crash never leaves a half-written frame under its real name.

Lifetime. A *temporary* store (:meth:`ResultStore.temporary`) gets a fresh folder under a cache
root and is deleted when the last object holding it (a result a downstream node still reads, for
instance) is gone, or at exit. Every live store holds an OS lock on a file in its folder; a store
created later under the same root removes folders whose lock is free (their process died), so
temporary folders never pile up. A *persistent* store (:meth:`ResultStore.open`) belongs to the
caller: the command line keeps one per output folder so that an interrupted run can resume; two
processes cannot use the same one at once.
"""
import errno
import json
import os
import queue
import shutil
import struct
import tempfile
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

MAGIC = b"MVR1"
LOCK_NAME = "lock"
TEMP_PREFIX = "results-"
STALE_AFTER_S = 60      # a lock file younger than this may belong to a store being created
QUEUE_FRAMES = 8        # frames waiting for the writer thread at most (RAM bound)
ZLIB_LEVEL = 1


class StoreError(ValueError):
    """The cache folder cannot hold the results; the message names the folder and the fix.
    (A ValueError like the other bad-input errors, so every front end reports it in one line.)"""


def default_cache_root():
    """``$MEMVOS_CACHE_DIR``, else ``<system temp>/memvos-cache``."""
    return Path(os.environ.get("MEMVOS_CACHE_DIR") or Path(tempfile.gettempdir()) / "memvos-cache")


def explain(exc, folder, what="write results to"):
    """One line for an OSError met in ``folder``."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", -1):
        fix = "the disk is full: free some space there or choose another cache folder"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
        fix = "it is not a writable folder: choose another cache folder"
    else:
        fix = "choose another cache folder"
    reason = exc.strerror or str(exc)
    return f"could not {what} the cache folder {folder} ({reason}): {fix}"


@dataclass(frozen=True, eq=False)
class StoredFrame:
    """One frame's result: uint16 ``[N,h,w]`` object probabilities (session order, background
    implied) or None when the pass could not segment the frame; ``known``: the object ids the
    pass had met by then (planes of other objects are 0 and carry no information)."""

    planes: Optional[torch.Tensor]
    known: tuple = ()

    @property
    def reached(self):
        return self.planes is not None


UNREACHED = StoredFrame(None, ())
_DELETED = object()


# ------------------------------------------------------------------ file format
def encode(entry):
    header = {"known": list(entry.known)}
    payload = b""
    if entry.planes is not None:
        array = entry.planes.contiguous().numpy()
        header["shape"] = list(array.shape)
        payload = zlib.compress(array.tobytes(), ZLIB_LEVEL)
    text = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(text)) + text + payload


def decode(data, path="frame"):
    if data[:4] != MAGIC:
        raise StoreError(f"{path} is not a MemVOS result file (damaged cache): delete the cache folder and run again")
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + n])
    if "shape" not in header:
        return StoredFrame(None, tuple(header["known"]))
    raw = zlib.decompress(data[8 + n:])
    planes = torch.from_numpy(np.frombuffer(raw, dtype=np.uint16).reshape(header["shape"]).copy())
    return StoredFrame(planes, tuple(header["known"]))


def write_bytes(path, data):
    """Atomically: a hidden ``.part`` file next to ``path``, then a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def link_or_copy(source, target):
    """``target`` becomes ``source``'s bytes: a hard link where the disk allows (the files are
    replaced, never written into, so sharing them is safe), else a copy."""
    if os.path.lexists(target):
        os.remove(target)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# ------------------------------------------------------------------ locking
def _try_lock(fd):
    try:
        if os.name == "nt":
            import msvcrt
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _hold_lock(folder):
    """An open, locked file descriptor in ``folder`` (released by the OS if the process dies)."""
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
        os.close(fd)
        return None
    return fd


def remove_stale(root):
    """Remove temporary store folders under ``root`` whose owner is gone (lock free)."""
    try:
        folders = [p for p in Path(root).iterdir() if p.is_dir() and p.name.startswith(TEMP_PREFIX)]
    except OSError:
        return
    now = time.time()
    for folder in folders:
        lock = folder / LOCK_NAME
        try:
            if now - (lock.stat().st_mtime if lock.exists() else folder.stat().st_mtime) < STALE_AFTER_S:
                continue
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            free = _try_lock(fd)
        finally:
            os.close(fd)
        if free:
            shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ writer
class _Writer:
    """The store's writer thread and what it has not written yet. Holds no reference to the
    store itself, so the store can be garbage collected (its finaliser stops this)."""

    def __init__(self, folder, remove_folder):
        self.folder = folder
        self.remove_folder = remove_folder
        self.queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.pending = {}
        self.lock = threading.Lock()
        self.error = None
        self.thread = None
        self.lock_fd = None
        self.closed = False

    def check(self):
        if self.error is not None:
            raise StoreError(explain(self.error, self.folder)) from None

    def submit(self, key, path, entry):
        self.check()
        if self.closed:
            raise StoreError(f"the results in {self.folder} were closed: propagate again")
        with self.lock:
            self.pending[key] = entry
        if self.thread is None:
            self.thread = threading.Thread(target=self.loop, name="memvos-results", daemon=True)
            self.thread.start()
        self.queue.put((key, path, entry))

    def lookup(self, key):
        with self.lock:
            return self.pending.get(key)

    def loop(self):
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                key, path, entry = item
                if self.error is None:
                    try:
                        if entry is _DELETED:
                            try:
                                os.remove(path)
                            except FileNotFoundError:
                                pass
                        else:
                            write_bytes(path, encode(entry))
                    except OSError as exc:
                        self.error = exc
                with self.lock:
                    if self.pending.get(key) is entry:
                        del self.pending[key]
            finally:
                self.queue.task_done()

    def flush(self):
        if self.thread is not None:
            self.queue.join()
        self.check()

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        if self.remove_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


# ------------------------------------------------------------------ store
class ResultStore:
    """Per-frame results in a folder; see the module docstring. ``put`` returns at once (the
    writer thread writes), ``get`` sees what was put even before it reached the disk,
    ``flush`` waits until everything put is on disk (before a checkpoint)."""

    def __init__(self, folder, temporary):
        self.folder = Path(folder)
        self.temporary = temporary
        self._writer = _Writer(self.folder, remove_folder=temporary)
        self._finalizer = weakref.finalize(self, self._writer.close)
        self._areas = set()

    @classmethod
    def temporary(cls, root=None):
        """A store in a fresh folder under ``root`` (default :func:`default_cache_root`), deleted
        when the store is garbage collected, closed, or at exit."""
        root = Path(root) if root is not None else default_cache_root()
        try:
            root.mkdir(parents=True, exist_ok=True)
            remove_stale(root)
            folder = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=root)
            fd = _hold_lock(folder)
        except OSError as exc:
            raise StoreError(explain(exc, root, "create results in")) from None
        store = cls(folder, temporary=True)
        store._writer.lock_fd = fd
        return store

    @classmethod
    def open(cls, folder):
        """The caller's store in ``folder`` (created if needed, kept after use, e.g. for
        resuming); refused while another process uses it."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = _hold_lock(folder)
            probe = folder / ".write-test"
            write_bytes(probe, b"")
            os.remove(probe)
        except OSError as exc:
            raise StoreError(explain(exc, folder, "keep results in")) from None
        if fd is None:
            raise StoreError(f"the cache folder {folder} is in use by another run: wait for it to finish or "
                             "choose another cache folder")
        store = cls(folder, temporary=False)
        store._writer.lock_fd = fd
        return store

    # ---------------------------------------------------------------- frames
    def _path(self, area, index):
        return self.folder / area / f"{int(index):08d}.mvr"

    def _ensure_area(self, area):
        if area not in self._areas:
            try:
                (self.folder / area).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(explain(exc, self.folder)) from None
            self._areas.add(area)

    def put(self, area, index, entry):
        self._ensure_area(area)
        self._writer.submit((area, int(index)), self._path(area, index), entry)

    def discard(self, area, index):
        self._ensure_area(area)
        self._writer.submit((area, int(index)), self._path(area, index), _DELETED)

    def copy_from(self, other, area, indices):
        """``other``'s frames ``indices`` of ``area`` here, byte for byte (hard links where the disk
        allows: ``other`` replaces its files, never writes into them). Frames ``other`` lacks are skipped."""
        other.flush()
        self._ensure_area(area)
        for index in indices:
            source, target = other._path(area, index), self._path(area, index)
            try:
                if source.is_file():
                    link_or_copy(source, target)
            except OSError as exc:
                raise StoreError(explain(exc, self.folder)) from None

    def get(self, area, index):
        """The :class:`StoredFrame` put for ``index`` in ``area``, or None if there is none."""
        entry = self._writer.lookup((area, int(index)))
        if entry is _DELETED:
            return None
        if entry is not None:
            return entry
        path = self._path(area, index)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            # The writer may have finished this frame between the lookup and the read.
            entry = self._writer.lookup((area, int(index)))
            return None if entry is _DELETED else entry
        except OSError as exc:
            raise StoreError(explain(exc, self.folder, "read results from")) from None
        try:
            return decode(data, path)
        except (ValueError, zlib.error, KeyError):
            raise StoreError(f"{path} is damaged: delete the cache folder {self.folder} and run again") from None

    def indices(self, area):
        """Frame indices on disk in ``area`` (after :meth:`flush`, everything put)."""
        folder = self.folder / area
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.mvr"))

    def clear(self, area):
        self.flush()
        shutil.rmtree(self.folder / area, ignore_errors=True)
        self._areas.discard(area)

    def flush(self):
        self._writer.flush()

    def close(self):
        """Write what is pending, release the folder; a temporary store's folder is deleted."""
        try:
            self.flush()
        finally:
            self._finalizer()

    def hand_over(self):
        """Make a persistent store temporary: its folder goes when the last result holding it is
        gone (or at exit). For a resumable run that finished and whose results are handed on
        (the Propagate node's)."""
        self.flush()
        self.temporary = True
        self._writer.remove_folder = True

    def remove(self):
        """Close and delete what this store wrote (its areas and lock); the folder too when
        nothing else is left in it. For a persistent store whose run is finished."""
        self.close()
        for sub in self.folder.iterdir():
            if sub.is_dir() and all(f.suffix in (".mvr", ".part") for f in sub.iterdir()):
                shutil.rmtree(sub, ignore_errors=True)
        try:
            os.remove(self.folder / LOCK_NAME)
        except OSError:
            pass
        try:
            self.folder.rmdir()
        except OSError:
            pass

    def disk_bytes(self):
        return sum(p.stat().st_size for p in self.folder.rglob("*.mvr"))

    def __repr__(self):
        kind = "temporary" if self.temporary else "persistent"
        return f"ResultStore({str(self.folder)!r}, {kind})"
