"""The results store: frames on disk, folders that clean up after themselves, clear errors."""
import errno
import gc
import os
import time

import pytest
import torch

from memvos_core.runtime.model import load_model
from memvos_core.session import ResultStore, Session, StoredFrame, StoreError
from memvos_core.session import store as store_module
from session_helpers import moving_discs, session_with_keys


@pytest.fixture(scope="module")
def model(synthetic_weights):
    return load_model(synthetic_weights)


def frame(value, known=(1, 2)):
    return StoredFrame(torch.full((2, 4, 5), value, dtype=torch.int32).to(torch.uint16), known)


def test_frames_round_trip_and_are_visible_before_they_reach_the_disk(tmp_path):
    store = ResultStore.temporary(tmp_path)
    store.put("result", 3, frame(65535))
    store.put("result", 4, StoredFrame(None, (1,)))
    got = store.get("result", 3)
    assert torch.equal(got.planes, frame(65535).planes) and got.known == (1, 2)
    store.flush()
    assert store.indices("result") == [3, 4]
    assert store.get("result", 4).planes is None and store.get("result", 4).known == (1,)
    assert store.get("result", 5) is None
    store.discard("result", 3)
    assert store.get("result", 3) is None
    store.flush()
    assert store.indices("result") == [4]
    assert not list(store.folder.rglob(".*.part"))


def test_a_temporary_store_lives_as_long_as_a_result_holds_it(model, tmp_path):
    frames, labels = moving_discs(num_frames=5)
    s = session_with_keys(model, frames, labels, [0], internal_size=32)
    s2, result = s.propagate(frames, store=ResultStore.temporary(tmp_path))
    folder = result.store.folder
    del s2
    gc.collect()
    assert folder.is_dir() and len(result.store.indices("result")) == 5
    first = result.labels(2)
    assert torch.equal(result.labels(2), first) and result.probabilities(4).shape == (3, 48, 64)
    del result
    gc.collect()
    assert not folder.exists()


def test_folders_of_dead_runs_are_removed_live_ones_kept(tmp_path):
    live = ResultStore.temporary(tmp_path)
    dead = tmp_path / "results-dead"
    dead.mkdir()
    (dead / "lock").write_bytes(b"")
    (dead / "result").mkdir()
    old = time.time() - 3600
    for path in (dead / "lock", live.folder / "lock"):
        os.utime(path, (old, old))
    fresh = ResultStore.temporary(tmp_path)
    assert not dead.exists() and live.folder.is_dir() and fresh.folder.is_dir()
    live.close()
    assert not live.folder.exists()


def test_a_persistent_store_is_kept_and_used_by_one_run_at_a_time(tmp_path):
    first = ResultStore.open(tmp_path / "cache")
    with pytest.raises(StoreError, match="in use by another run"):
        ResultStore.open(tmp_path / "cache")
    first.put("backward", 7, frame(3))
    first.close()
    again = ResultStore.open(tmp_path / "cache")
    assert again.get("backward", 7).known == (1, 2)


def test_a_folder_that_cannot_be_written_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as err:
        ResultStore.temporary(blocker / "cache")
    assert "not a writable folder" in str(err.value) and str(blocker) in str(err.value)
    with pytest.raises(StoreError, match="not a writable folder"):
        ResultStore.open(blocker)


def test_a_full_disk_is_reported_and_leaves_nothing_half_written(model, tmp_path, monkeypatch):
    real_open = open

    class FillsUp:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    writes = [0]

    def fake_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        if "w" in mode and str(path).endswith(".part"):
            writes[0] += 1
            if writes[0] > 2:
                return FillsUp(f)
        return f

    monkeypatch.setattr(store_module, "open", fake_open, raising=False)
    frames, labels = moving_discs(num_frames=12)
    s = session_with_keys(model, frames, labels, [0], internal_size=32)
    store = ResultStore.temporary(tmp_path)
    with pytest.raises(StoreError) as err:
        s.propagate(frames, store=store)
    assert "disk is full" in str(err.value) and "\n" not in str(err.value)
    files = [p.name for p in store.folder.rglob("*") if p.is_file()]
    assert not [n for n in files if n.endswith(".part")]
    assert sorted(n for n in files if n.endswith(".mvr")) == ["00000000.mvr", "00000001.mvr"]


def test_a_saved_session_does_not_need_the_store(model, tmp_path):
    frames, labels = moving_discs(num_frames=8)
    s = session_with_keys(model, frames, labels, [0], internal_size=32)
    s1, first = s.propagate(frames[:4], store=ResultStore.temporary(tmp_path))
    path = s1.save(tmp_path / "s.safetensors")
    first.store.close()
    assert not first.store.folder.exists()
    loaded = Session.load(path, model)
    _, a = s1.propagate(frames[4:], first_frame_index=4)
    _, b = loaded.propagate(frames[4:], first_frame_index=4)
    assert all(torch.equal(a.internal(t), b.internal(t)) for t in range(4, 8))
