"""Propagating again after the keyframes change, over only the frames the change affects.

The rule. A *change* is an object ``o`` whose annotation at frame ``c`` differs between the last
run's keyframes and the new ones: a keyframe added or removed, or another mask for ``o`` there (a
keyframe's new image changes each of its objects). Let ``p`` be the last keyframe before ``c``
that annotates ``o`` and did not change for ``o``, and ``n`` the first such keyframe after ``c``
(the range's first or last frame where there is none). The change's *span* is frames ``p..n``;
spans that overlap merge. Each pass runs again over its frames inside each span, every object at
once (the network segments them together), and blends there as a whole run would; every frame
outside the spans keeps the last run's stored result byte for byte. Keyframes of other objects
do not widen a span: a change to ``o`` is bounded by ``o``'s own keyframes.

Why these frames. ``o``'s blend weight at ``t`` (:mod:`.blend`) depends only on ``o``'s keyframes
around ``t``, so outside ``p..n`` it is unchanged. The forward pass reaches ``c`` only after ``p``
and re-annotates ``o`` at ``n``; the backward pass reaches ``c`` only after ``n`` and
re-annotates at ``p``; outside the span each pass is anchored by keyframes that did not change.

It is an approximation. What the change would still alter outside the span is kept from the old
run: memory carried past ``n`` by the forward pass (and before ``p`` by the backward pass) and
other objects' masks there. Inside the span, a pass starts from the last run's memory state at
the span's edge keyframe (saved as that run stepped it), so memory before the span comes from the
old run; when that state has taken in a keyframe that changed since (in the ``keyframes`` memory
mode every complete keyframe is in permanent memory from the first frame), the pass starts afresh
at the edge with the new keyframes, as a run starts at its first keyframe. A span that reaches a
pass's first frame starts that pass afresh as a whole run does, so a span covering the whole range
gives exactly a fresh run. ``exact`` (a fresh run of the whole range) remains the reference.
"""
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .blend import pass_ranges
from .keyframe_states import KeyframeStates
from .keyframes import same_keyframe
from .propagation import PASSES, STATES_FOLDER, CheckpointMismatch, Propagation, setup_differences, within
from .result import RESULT_AREA, PropagationResult
from .store import ResultStore

LOG = logging.getLogger("memvos")
RERUN = ("span", "exact")  # what runs again after a keyframe fix: the affected spans, or the whole range


def changed_objects(old, new):
    """``{frame: {object ids}}`` whose annotation differs between two keyframe sequences."""
    before = {k.frame_index: k for k in old}
    after = {k.frame_index: k for k in new}
    out = {}
    for frame in set(before) | set(after):
        a, b = before.get(frame), after.get(frame)
        if same_keyframe(a, b):
            continue
        ids_a = set(a.object_ids) if a is not None else set()
        ids_b = set(b.object_ids) if b is not None else set()
        if a is None or b is None or not _same_image(a, b):
            changed = ids_a | ids_b
        else:
            changed = {o for o in ids_a | ids_b
                       if (o in ids_a) != (o in ids_b) or not (a.labels == o).equal(b.labels == o)}
        if changed:
            out[frame] = changed
    return out


def _same_image(a, b):
    return a.image is b.image or a.image.equal(b.image)


def affected_spans(old, new, start, end):
    """The half-open clip ranges ``[lo, hi)`` inside ``[start, end)`` that the change from
    keyframes ``old`` to ``new`` affects (module docstring), merged and sorted."""
    changes = changed_objects(old, new)
    keys = {}
    for k in new:
        for o in k.object_ids:
            if o not in changes.get(k.frame_index, ()):
                keys.setdefault(o, []).append(k.frame_index)
    spans = []
    for frame, objects in changes.items():
        for o in objects:
            unchanged = keys.get(o, [])
            lo = max((f for f in unchanged if f < frame), default=start)
            hi = min((f for f in unchanged if f > frame), default=end - 1)
            lo, hi = max(lo, start), min(hi, end - 1)
            if lo <= hi:
                spans.append((lo, hi + 1))
    merged = []
    for lo, hi in sorted(spans):
        if merged and lo < merged[-1][1]:   # overlapping (sharing a frame counts)
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def outside(spans, start, end):
    """The half-open ranges of ``[start, end)`` not in ``spans`` (frames kept from an earlier run)."""
    out, at = [], start
    for lo, hi in spans:
        if lo > at:
            out.append((at, lo))
        at = max(at, hi)
    if at < end:
        out.append((at, end))
    return out


@dataclass(frozen=True, eq=False)
class RunRecord:
    """What a run leaves for the next to run only a span: the session it was given, where it ran,
    its result (the frames on disk), the session it returned, and each pass's memory state at each
    keyframe (``states``, a :class:`~.keyframe_states.KeyframeStates` on disk beside the results,
    read only when a span starts there). ``spans``: the ranges this run computed (the whole range
    for a full run); ``key``: the digest naming the run's folder (:mod:`.run_folder`), if it has
    one; ``resumed_at``: frames of work this run did not do again, resumed from a checkpoint."""

    session: object
    first: int
    direction: str
    start: int
    end: int
    result: PropagationResult
    out: object
    states: KeyframeStates
    spans: tuple
    key: str = None
    resumed_at: int = 0

    @classmethod
    def of(cls, job, out, key=None):
        """The record of a finished whole :class:`Propagation` run with ``keep_states``."""
        return cls(job.session, job.first, job.direction, job.start, job.end, job.result, out, job.key_states,
                   ((job.start, job.end),), key, job.resumed_at)

    def to(self, device):
        """The same record with the returned session on ``device`` (e.g. off the GPU between runs;
        the keyframe states are on disk)."""
        return dataclasses.replace(self, out=self.out.to(device))

    @property
    def stale(self):
        """Frames this run kept from an earlier one (half-open ranges)."""
        return outside(self.spans, self.start, self.end)


def why_not_span(record, session, first, direction, start, end):
    """Why ``session`` cannot be propagated again over spans of ``record``'s run (a short phrase),
    or None when it can. The frames must be the same; the caller checks that."""
    if record is None:
        return "no earlier run"
    if (record.first, record.direction, record.start, record.end) != (first, direction, start, end):
        return "another range or direction"
    if record.session.model is not session.model:
        return "another model"
    if session.forward_state is not None or session.backward_state is not None:
        return "the session carries memory from an earlier chunk"
    differences = [d for d in setup_differences(record.session, session) if d != "keyframes"]
    if differences:
        return f"other settings ({', '.join(differences)})"
    if set(record.session.object_ids) != set(session.object_ids):
        return "objects were added or removed"
    return None


def _seed(record, name, edge, now):
    """The last run's state of pass ``name`` before it stepped ``edge``, if every keyframe it has
    taken in is unchanged in ``now`` (``{frame: Keyframe}``); else None (the pass starts afresh)."""
    kept = record.states.get((name, edge))
    if kept is None:
        return None
    state, taken_with = kept
    for frame in set(state.preloaded) | set(state.reached):
        if not same_keyframe(taken_with.get(frame), now.get(frame)):
            return None
    return state


def propagate_spans(record, session, frames, progress=None, cancel=None, store=None, checkpoint=None, key=None):
    """Propagate ``session`` (new keyframes) over ``record``'s range again, only over the spans the
    change affects (module docstring). ``frames``: the same frames as the recorded run. Returns
    ``(new_session, result, new_record)``; ``new_record.spans`` says which frames ran again.
    ``checkpoint`` (a :class:`Checkpoint` in ``store``'s folder): saved as the spans run and when
    cancelled, and continued from when it is there (a cancelled span run called again with the
    same inputs and store gives the masks of an uncancelled one); ``key`` names the new record.
    Raises ValueError when :func:`why_not_span` has a reason."""
    first, direction, start, end = record.first, record.direction, record.start, record.end
    reason = why_not_span(record, session, first, direction, start, end)
    if reason is not None:
        raise ValueError(f"cannot propagate only the changed frames: {reason}; run the whole shot (exact)")
    spans = affected_spans(record.session.keyframes, session.keyframes, start, end)
    store = store if store is not None else ResultStore.temporary()
    kept_frames = [i for lo, hi in outside(spans, start, end) for i in range(lo, hi)]
    store.copy_from(record.result.store, RESULT_AREA, kept_frames)
    ids = list(session.object_ids)
    in_range = [k for k in session.keyframes if start <= k.frame_index < end]
    result = PropagationResult(ids, tuple(session.frame_size), in_range, store, (start, end))
    whole = pass_ranges(direction, [k.frame_index for k in session.keyframes], start, end)
    now = {k.frame_index: k for k in session.keyframes}
    states = KeyframeStates(store.folder / STATES_FOLDER)

    def in_spans(key):
        return any(lo <= key[1] < hi for lo, hi in spans)

    record.states.link_into(states, keep=lambda key: not in_spans(key))

    def job_of(span):
        seeds = {}
        for name in PASSES:
            rng = within(whole[name], span)
            if rng is None:
                continue
            edge, whole_edge = (rng[0], whole[name][0]) if name == "forward" else (rng[1] - 1, whole[name][1] - 1)
            seeds[name] = None if edge == whole_edge else _seed(record, name, edge, now)
        return Propagation(session, frames, first, direction, start, end, span=span, seeds=seeds, result=result,
                           keep_states=states)

    jobs = [job_of(span) for span in spans]
    total = sum(job.total for job in jobs)
    finals = {"forward": record.out.forward_state, "backward": record.out.backward_state}
    finished = 0
    if checkpoint is not None:
        finished, finals = _spans_done(checkpoint, session, spans, finals)
        states.adopt(now, keep=in_spans)  # the states the spans before a cancel reached
    done = resumed_at = sum(job.total for job in jobs[:finished])
    for n, (span, job) in enumerate(zip(spans, jobs)):
        if n < finished:
            continue
        step = (lambda d, _t, offset=done: progress(offset + d, total)) if progress is not None else None
        if checkpoint is None:
            job.run(step, cancel)
        else:
            at = dataclasses.replace(checkpoint, extra={**checkpoint.extra, "span": list(span)})
            try:
                job.run(step, cancel, None, at, resume=True)
            except CheckpointMismatch as exc:  # a damaged file, or one of another span: this span afresh
                LOG.warning("MemVOS: %s; propagating the span %d..%d from its start", exc, span[0], span[1] - 1)
                os.remove(at.path)
                job = job_of(span)
                job.run(step, cancel, None, at)
            resumed_at += job.resumed_at
        done += job.total
        for name in PASSES:
            rng = job.ranges[name]
            if rng is not None and rng[int(name == "forward")] == whole[name][int(name == "forward")]:
                finals[name] = job.states[name]
        if checkpoint is not None:
            _save_spans_done(checkpoint, session, spans, n + 1, finals, record)
    out = session.replace(forward_state=finals["forward"], backward_state=finals["backward"])
    new_record = RunRecord(session, first, direction, start, end, result, out, states, tuple(spans), key, resumed_at)
    return out, result, new_record


def spans_done_path(checkpoint):
    """Beside a span run's checkpoint: how many of its spans are finished, and the memory states
    they ended with (where they reach a pass's end)."""
    path = Path(checkpoint.path)
    return path.with_name(f"{path.stem}.spans{path.suffix}")


def _save_spans_done(checkpoint, session, spans, finished, finals, record):
    from .storage import save_session
    changed = [name for name in PASSES if finals[name] is not getattr(record.out, f"{name}_state")]
    kept = {f"{name}_state": finals[name] if name in changed else None for name in PASSES}
    save_session(session.replace(**kept), spans_done_path(checkpoint), what="checkpoint",
                 extra={"spans": [list(span) for span in spans], "finished": finished, "finals": changed})
    if checkpoint.exists():
        os.remove(checkpoint.path)   # the span's own checkpoint: that span is finished


def _spans_done(checkpoint, session, spans, finals):
    """``(spans finished, finals)`` from a cancelled span run's file, or ``(0, finals)``."""
    from .storage import SessionFileError, read_session
    path = spans_done_path(checkpoint)
    if not path.is_file():
        return 0, finals
    try:
        fields, extra = read_session(path, session.model)
        if not isinstance(extra, dict) or extra.get("spans") != [list(span) for span in spans]:
            raise SessionFileError("of another span run")
        finals = dict(finals, **{name: fields[f"{name}_state"] for name in extra["finals"]})
        return int(extra["finished"]), finals
    except (SessionFileError, KeyError, TypeError, ValueError) as exc:
        LOG.warning("MemVOS: %s is not this span run's (%s); propagating the spans from their start", path, exc)
        return 0, finals


def propagate_recorded(session, frames, first_frame_index=0, direction="both", start=None, end=None,
                       progress=None, cancel=None, store=None, checkpoint=None, key=None):
    """A whole run that keeps what :func:`propagate_spans` needs: ``(new_session, result, record)``.
    ``checkpoint`` (a :class:`Checkpoint` in ``store``'s folder): saved as the run goes and when
    cancelled, and continued from when it is there (the masks of an uninterrupted run); the
    states at keyframes reached before it are read back from the store's folder."""
    def job_of():
        return Propagation(session, frames, first_frame_index, direction, start, end, store=store, keep_states=True)
    job = job_of()
    if checkpoint is None:
        out, result = job.run(progress, cancel)
        return out, result, RunRecord.of(job, out, key)
    job.key_states.adopt(job.taken_with)
    try:
        out, result = job.run(progress, cancel, None, checkpoint, resume=True)
    except CheckpointMismatch as exc:  # a damaged or foreign file under our name: start afresh
        LOG.warning("MemVOS: %s; propagating from the start", exc)
        os.remove(checkpoint.path)
        job = job_of()
        out, result = job.run(progress, cancel, None, checkpoint)
    return out, result, RunRecord.of(job, out, key)


__all__ = ["RERUN", "RunRecord", "affected_spans", "changed_objects", "outside", "propagate_recorded", "propagate_spans",
           "why_not_span"]
