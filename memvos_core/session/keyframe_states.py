"""Each pass's memory state just before it stepped each keyframe, kept on disk for a later run of
only a span (:mod:`.span`).

One file per state, ``<folder>/<pass>.<frame>.safetensors`` (:func:`.storage.save_pass_state`,
written atomically), written as the pass reaches the keyframe and read back only when a span
starts there. In RAM the index holds which states exist and the keyframes each was computed with
(references to the sessions' own keyframes, no copies), so host memory does not grow with the
number of keyframes. The folder sits in the run's result folder and goes with it.
"""
import os
from pathlib import Path

from .storage import read_pass_state, save_pass_state
from .store import StoreError, explain, link_or_copy

SUFFIX = ".safetensors"


class KeyframeStates:
    """``{(pass, frame): (PassState, {frame: Keyframe} it was computed with)}`` read lazily from
    ``folder``: ``in``, ``keys()``, ``len()`` use the index; ``get`` / ``[]`` read one file."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self._index = {}

    def _path(self, key):
        return self.folder / f"{key[0]}.{int(key[1]):08d}{SUFFIX}"

    def _ensure_folder(self):
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(explain(exc, self.folder, "keep memory states in")) from None

    def put(self, name, frame, state, taken_with):
        """Write pass ``name``'s ``state`` before keyframe ``frame`` (``taken_with``: the keyframes
        the run was given, ``{frame: Keyframe}``)."""
        self._ensure_folder()
        save_pass_state(self._path((name, frame)), state)
        self._index[(name, int(frame))] = taken_with

    def adopt(self, taken_with, keep=None):
        """Index the state files already in the folder (those whose key passes ``keep(key)``, if
        given): a resumed run's states written before it was cancelled, computed with ``taken_with``."""
        for key in self.on_disk():
            if keep is None or keep(key):
                self._index[key] = taken_with

    def on_disk(self):
        try:
            names = os.listdir(self.folder)
        except OSError:
            return []
        keys = []
        for name in names:
            stem, dot, frame = name[:-len(SUFFIX)].rpartition(".")
            if name.endswith(SUFFIX) and not name.startswith(".") and dot and frame.isdigit():
                keys.append((stem, int(frame)))
        return sorted(keys)

    def link_into(self, other, keep):
        """``other`` (another run's states) gets this run's states whose key passes ``keep(key)``,
        byte for byte (hard links where the disk allows: files are replaced, never written into)."""
        other._ensure_folder()
        for key, taken_with in self._index.items():
            if not keep(key):
                continue
            try:
                link_or_copy(self._path(key), other._path(key))
            except OSError as exc:
                raise StoreError(explain(exc, other.folder, "keep memory states in")) from None
            other._index[key] = taken_with

    def taken_with(self, key):
        return self._index.get(key)

    def get(self, key, default=None):
        taken_with = self._index.get(key)
        if taken_with is None:
            return default
        return read_pass_state(self._path(key))[0], taken_with

    def __getitem__(self, key):
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key):
        return key in self._index

    def keys(self):
        return self._index.keys()

    def __len__(self):
        return len(self._index)

    def disk_bytes(self):
        return sum(self._path(key).stat().st_size for key in self._index)


__all__ = ["KeyframeStates"]
