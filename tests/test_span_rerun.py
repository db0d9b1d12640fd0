"""Propagating again after a keyframe change runs only the span the change affects
(memvos_core/session/span.py): the frames between the changed objects' neighbouring unchanged
keyframes run again, every other frame keeps the last run's stored result byte for byte.

The 200-frame shots run on the test-only toy family (each step is a few microseconds of
arithmetic, so frames counted are the engine's steps); the real network's memory states are
exercised on a short XMem shot."""
import pytest
import torch

import toy_family
from memvos_core.families import registry
from memvos_core.network.synthetic import synthetic_state_dict
from memvos_core.runtime.model import load_model
from memvos_core.session import Keyframe, Session
from memvos_core.session.span import (affected_spans, changed_objects, outside, propagate_recorded,
                                      propagate_spans, why_not_span)
from session_helpers import moving_discs, small_config

FRAMES = 221


class Counted:
    """A shot's frames that count which frames the propagation read (one read per step)."""

    def __init__(self, frames):
        self.frames, self.read = frames, []

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        self.read.append(int(i))
        return self.frames[i]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks: one thread


@pytest.fixture(scope="module")
def toy_model():
    registry.register(toy_family.FAMILY)
    try:
        yield load_model(synthetic_state_dict(family=toy_family.NAME))
    finally:
        registry.unregister(toy_family.NAME)


@pytest.fixture(scope="module")
def long_shot():
    return moving_discs(num_frames=FRAMES, height=32, width=32)


def keyed(model, frames, labels, keys, mode="keyframes", internal_size=16):
    s = Session(model, small_config(mode), internal_size=internal_size)
    for k in keys:
        s = s.add_label_map(k, frames[k], labels[k], object_ids=[1, 2])
    return s


def stored(result, frames=None):
    return [result.internal(i) for i in (frames if frames is not None else result.frame_indices)]


def same_list(a, b):
    return len(a) == len(b) and all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
                                    for x, y in zip(a, b))


def moved_disc(labels, t, object_id, shift=3):
    """Frame ``t``'s labels with ``object_id``'s disc shifted: another annotation of that object."""
    lab = labels[t].clone()
    disc = lab == object_id
    lab[disc] = 0
    lab[torch.roll(disc, shift, dims=1) & (lab == 0)] = object_id
    return lab


def test_span_rule_names_the_changed_objects_neighbouring_unchanged_keyframes(toy_model, long_shot):
    frames, labels = long_shot
    s = keyed(toy_model, frames, labels, (0, 100, 200))
    added = s.add_label_map(150, frames[150], labels[150], object_ids=[1, 2])
    assert changed_objects(s.keyframes, added.keyframes) == {150: {1, 2}}
    assert affected_spans(s.keyframes, added.keyframes, 0, FRAMES) == [(100, 201)]
    changed = s.add_label_map(100, frames[100], moved_disc(labels, 100, 1))
    assert changed_objects(s.keyframes, changed.keyframes) == {100: {1}}
    assert affected_spans(s.keyframes, changed.keyframes, 0, FRAMES) == [(0, 201)]
    last = s.add_label_map(200, frames[200], moved_disc(labels, 200, 2))
    assert affected_spans(s.keyframes, last.keyframes, 0, FRAMES) == [(100, FRAMES)]  # no keyframe after: the end
    assert affected_spans(s.keyframes, s.keyframes, 0, FRAMES) == []
    assert outside([(100, 201)], 0, FRAMES) == [(0, 100), (201, FRAMES)]


def test_span_change_at_150_runs_only_100_to_200_and_keeps_every_other_frame_byte_identical(toy_model, long_shot):
    frames, labels = long_shot
    s = keyed(toy_model, frames, labels, (0, 100, 200))
    _, old, record = propagate_recorded(s, frames)
    new = s.add_label_map(150, frames[150], moved_disc(labels, 150, 1))
    counted = Counted(frames)
    progress = []
    out, result, again = propagate_spans(record, new, counted, progress=lambda d, t: progress.append((d, t)))
    assert sorted(set(counted.read)) == list(range(100, 201))
    assert len(counted.read) == 2 * 101                     # each pass once over 100..200
    assert progress[-1] == (202, 202)
    assert again.spans == ((100, 201),) and again.stale == [(0, 100), (201, FRAMES)]
    kept = list(range(0, 100)) + list(range(201, FRAMES))
    assert same_list(stored(result, kept), stored(old, kept))
    for i in kept:  # the files themselves, byte for byte
        path = f"result/{i:08d}.mvr"
        assert (result.store.folder / path).read_bytes() == (old.store.folder / path).read_bytes()
    assert not same_list(stored(result, range(150, 201)), stored(old, range(150, 201)))
    assert torch.equal(result.labels(150), new.keyframe(150).labels)
    assert out.forward_state is not None and out.backward_state is not None


def test_span_exact_equals_a_fresh_run_and_a_span_over_everything_is_exact(toy_model, long_shot):
    frames, labels = long_shot
    s = keyed(toy_model, frames, labels, (0, 100, 200))
    _, _, record = propagate_recorded(s, frames)
    new = s.add_label_map(150, frames[150], moved_disc(labels, 150, 1))
    _, fresh = new.propagate(frames, direction="both")
    _, exact, _ = propagate_recorded(new, frames)               # what "exact" runs
    assert same_list(stored(exact), stored(fresh))
    # object 1 changes on the first and the last keyframe: no unchanged keyframe before the one
    # nor after the other, so the spans 0..100 and 100..end merge into the whole shot, where each
    # pass starts afresh as in a whole run: the result is a fresh run's
    ends = s.add_label_map(0, frames[0], moved_disc(labels, 0, 1))
    ends = ends.add_label_map(200, frames[200], moved_disc(labels, 200, 1))
    _, whole = ends.propagate(frames, direction="both")
    _, result, again = propagate_spans(record, ends, frames)
    assert again.spans == ((0, FRAMES),) and again.stale == []
    assert same_list(stored(result), stored(whole))


def test_span_new_and_removed_keyframes(toy_model, long_shot):
    frames, labels = long_shot
    s = keyed(toy_model, frames, labels, (0, 100, 150, 200))
    _, old, record = propagate_recorded(s, frames)
    removed = s.remove_keyframe(150)
    counted = Counted(frames)
    _, result, again = propagate_spans(record, removed, counted)
    assert again.spans == ((100, 201),) and sorted(set(counted.read)) == list(range(100, 201))
    outside_span = list(range(0, 100)) + list(range(201, FRAMES))
    assert same_list(stored(result, outside_span), stored(old, outside_span))
    assert not result.reached(150) or not torch.equal(result.labels(150), s.keyframe(150).labels)
    # a new keyframe on top of the last run (the record chains): only its own span runs
    added = removed.add_label_map(50, frames[50], labels[50], object_ids=[1, 2])
    counted = Counted(frames)
    _, result2, again2 = propagate_spans(again, added, counted)
    assert again2.spans == ((0, 101),) and sorted(set(counted.read)) == list(range(0, 101))
    assert same_list(stored(result2, range(101, FRAMES)), stored(result, range(101, FRAMES)))
    assert again2.stale == [(101, FRAMES)]


def test_span_change_to_one_object_leaves_the_others_keyframes_out_of_it(toy_model, long_shot):
    frames, labels = long_shot
    # object 1 is annotated at 0, 100, 200; object 2 only at 0 and 200
    s = keyed(toy_model, frames, labels, (0, 200))
    s = s.add_label_map(100, frames[100], torch.where(labels[100] == 1, labels[100], 0), object_ids=[1])
    _, old, record = propagate_recorded(s, frames)
    one = s.add_label_map(150, frames[150], torch.where(labels[150] == 1, labels[150], 0), object_ids=[1])
    assert changed_objects(s.keyframes, one.keyframes) == {150: {1}}
    counted = Counted(frames)
    _, result, again = propagate_spans(record, one, counted)
    assert again.spans == ((100, 201),)                      # object 2's 0..200 is not the span
    assert sorted(set(counted.read)) == list(range(100, 201))
    assert same_list(stored(result, range(0, 100)), stored(old, range(0, 100)))
    two = s.add_label_map(150, frames[150], torch.where(labels[150] == 2, labels[150], 0), object_ids=[2])
    assert affected_spans(s.keyframes, two.keyframes, 0, FRAMES) == [(0, 201)]  # object 2's neighbours


def test_span_refuses_what_it_cannot_reuse(toy_model, long_shot):
    frames, labels = long_shot
    s = keyed(toy_model, frames, labels, (0, 100))
    _, _, record = propagate_recorded(s, frames[:120])
    assert why_not_span(record, s, 0, "both", 0, 120) is None
    assert why_not_span(record, s, 0, "forward", 0, 120) == "another range or direction"
    assert why_not_span(None, s, 0, "both", 0, 120) == "no earlier run"
    other = keyed(toy_model, frames, labels, (0, 100), internal_size=32)
    assert "internal_size" in why_not_span(record, other, 0, "both", 0, 120)
    more = s.add_label_map(50, frames[50], torch.where(labels[50] == 1, 3, labels[50]))
    assert why_not_span(record, more, 0, "both", 0, 120) == "objects were added or removed"
    with pytest.raises(ValueError, match="run the whole shot"):
        propagate_spans(record, more, frames[:120])


@pytest.mark.parametrize("mode", ["keyframes", "evaluation"])
def test_span_on_the_real_network_starts_from_the_last_runs_memory(synthetic_weights, mode):
    """XMem: in the evaluation mode the forward pass starts from the state saved at the span's
    first keyframe (its results inside the span equal a fresh run's until the change); in the
    keyframes mode that state holds the old annotation in permanent memory, so it starts afresh."""
    model = load_model(synthetic_weights)
    frames, labels = moving_discs(num_frames=14, height=32, width=32)
    s = keyed(model, frames, labels, (0, 5, 10), mode=mode, internal_size=32)
    _, old, record = propagate_recorded(s, frames, direction="forward")
    assert ("forward", 5) in record.states
    new = s.add_label_map(10, frames[10], moved_disc(labels, 10, 1))
    counted = Counted(frames)
    _, result, again = propagate_spans(record, new, counted)
    assert again.spans == ((5, 14),) and sorted(set(counted.read)) == list(range(5, 14))
    assert same_list(stored(result, range(0, 5)), stored(old, range(0, 5)))
    _, fresh = new.propagate(frames, direction="forward")
    before_change = range(5, 10)
    if mode == "evaluation":   # the saved state holds only frames before 5: as a fresh run
        assert same_list(stored(result, before_change), stored(fresh, before_change))
    else:                      # a fresh pass at 5: not the whole run's working memory
        assert record.states[("forward", 5)][0].preloaded == [0, 5, 10]
    assert torch.equal(result.labels(10), new.keyframe(10).labels)


def test_span_through_the_shot_api(toy_model, long_shot):
    from memvos_core.shot import Shot
    frames, labels = long_shot
    shot = Shot.open(toy_model, frames, small_config("keyframes"), internal_size=16)
    for k in (0, 100, 200):
        shot.add_keyframe(k, labels[k], object_ids=[1, 2])
    first = shot.propagate_again()
    assert shot.stale == [] and first.reached(220)
    shot.add_keyframe(150, moved_disc(labels, 150, 1), object_ids=[1, 2])
    again = shot.propagate_again()
    assert shot.stale == [(0, 100), (201, FRAMES)]
    assert torch.equal(again.internal(50), first.internal(50))
    assert torch.equal(again.labels(150), moved_disc(labels, 150, 1))
    shot.propagate_again(rerun="exact")
    assert shot.stale == []


def test_span_without_a_change_runs_nothing_and_keeps_every_frame(toy_model, long_shot):
    frames, labels = long_shot
    s = keyed(toy_model, frames[:60], labels, (0, 30))
    _, old, record = propagate_recorded(s, frames[:60])
    counted = Counted(frames[:60])
    same_keys = keyed(toy_model, frames[:60], labels, (0, 30))   # equal keyframes, other objects in memory
    _, result, again = propagate_spans(record, same_keys, counted)
    assert counted.read == [] and again.spans == () and again.stale == [(0, 60)]
    assert same_list(stored(result), stored(old))


def test_span_record_keeps_the_memory_states_on_disk_and_reads_them_lazily(synthetic_weights):
    """The record holds no memory state in RAM: one file per pass and keyframe beside the results,
    read only when asked for (a file changed on disk is what ``states[...]`` returns)."""
    model = load_model(synthetic_weights)
    frames, labels = moving_discs(num_frames=14, height=32, width=32)
    s = keyed(model, frames, labels, (0, 5, 10), mode="evaluation", internal_size=32)
    _, _, record = propagate_recorded(s, frames, direction="both")
    keys = sorted(record.states.keys())
    assert keys == [("backward", 0), ("backward", 5), ("backward", 10), ("forward", 0), ("forward", 5),
                    ("forward", 10)]
    files = sorted(p.name for p in record.states.folder.iterdir())
    assert len(files) == len(keys) and record.states.folder.parent == record.result.store.folder
    # in RAM only which keyframes each state was computed with: the run's own keyframe objects
    held = [kf for key in keys for kf in record.states.taken_with(key).values()]
    assert all(any(kf is k for k in record.session.keyframes) for kf in held)
    assert tensors_reachable(record.states, stop=Keyframe) == []
    at5 = record.states[("forward", 5)][0]
    assert at5.next_frame == 5 and at5.tensors and all(t.device.type == "cpu" for t in at5.tensors.values())
    (record.states.folder / "forward.00000005.safetensors").write_bytes(
        (record.states.folder / "forward.00000010.safetensors").read_bytes())
    assert record.states[("forward", 5)][0].next_frame == 10, "read from its file when asked for"


def tensors_reachable(root, stop):
    """The tensors reachable from ``root`` through references, not looking into ``stop`` objects."""
    import gc
    import types
    seen, todo, found = set(), [root], []
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (stop, type, types.ModuleType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
        else:
            todo.extend(gc.get_referents(obj))
    return found


class CancelAfter:
    """``cancel()`` true from the ``n``-th frame of work on (a button pressed mid-run)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self):
        self.calls += 1
        return self.calls > self.n


@pytest.mark.parametrize("cancel_at", [30, 250])   # in the first span (202 frames of work), in the second
def test_span_resume_after_cancel_continues_and_gives_the_uncancelled_masks(toy_model, long_shot, tmp_path,
                                                                          cancel_at):
    from memvos_core.session import PropagationCancelled
    from memvos_core.session.run_folder import RunFolders
    from memvos_core.shot import Shot
    frames, labels = long_shot
    runs = RunFolders(tmp_path / "runs", tmp_path / "cache", every=10, every_s=0)
    shot = Shot(keyed(toy_model, frames, labels, (0, 100, 150, 200)), frames)
    shot.propagate_again(runs=runs)
    before = shot.record
    fixed = shot.session.add_label_map(50, frames[50], moved_disc(labels, 50, 1))
    fixed = fixed.add_label_map(175, frames[175], moved_disc(labels, 175, 2))
    reference_session, reference, uncancelled = propagate_spans(before, fixed.replace(forward_state=None,
                                                                                      backward_state=None), frames)
    assert uncancelled.spans == ((0, 101), (150, 201))
    total = 2 * (101 + 51)
    shot = Shot(fixed, Counted(frames), frames_key=shot.frames_key, record=before)
    with pytest.raises(PropagationCancelled):
        shot.propagate_again(cancel=CancelAfter(cancel_at), runs=runs)
    assert shot.record is before
    assert len(list((tmp_path / "runs").iterdir())) == 2, "the cancelled span run keeps its folder"
    steps = []
    shot.frames.read.clear()
    result = shot.propagate_again(progress=lambda d, t: steps.append((d, t)), runs=runs)
    assert shot.record.spans == uncancelled.spans
    assert shot.record.resumed_at == cancel_at and steps[0] == (cancel_at + 1, total) and steps[-1] == (total, total)
    assert len(shot.frames.read) == total - cancel_at, "only the work after the cancel runs again"
    assert same_list(stored(result), stored(reference))
    assert sorted(shot.record.states.keys()) == sorted(uncancelled.states.keys())
    for name in ("forward_state", "backward_state"):
        a, b = getattr(shot.session, name), getattr(reference_session, name)
        assert a.tensors.keys() == b.tensors.keys() and all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
