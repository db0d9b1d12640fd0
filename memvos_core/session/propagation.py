"""One propagation call: which passes run over which frames, when each frame is final, and
checkpoints of the memory state so that an interrupted run resumes where it stopped.

Order of work. With ``both`` the backward pass runs first (down from the last keyframe); a frame
before the forward pass's range is final at once, the others wait in the store's ``backward``
area. The forward pass then blends each frame with its waiting backward result (rule in
:mod:`.blend`) and the frame is final; frames after the backward pass's range are final as soon
as the forward pass reaches them. So frames stream out in order during the forward pass, and
at most the frames between the first and last keyframe ever wait on disk.

Checkpoints (:class:`Checkpoint`): every ``every`` frames and when the caller cancels (between
two frames, where the memory state is whole) the session with each pass's memory state, and which
passes are done, is saved atomically; waiting backward results are on disk before it is written.
``run(..., resume=True)`` continues from it: finished passes are not run again, the running one
continues from its saved state, and the frames after the checkpoint are computed again exactly as
an uninterrupted run would (the same masks, bit for bit).
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

from .blend import combine, keyframes_by_object, object_weights, pass_ranges
from .directional import DirectionalPass, PropagationCancelled
from .keyframe_states import KeyframeStates
from .keyframes import same_keyframe
from .result import DIRECTIONS, PropagationResult, to_session_order
from .store import UNREACHED, ResultStore, StoreError

BACKWARD_AREA = "backward"
PASSES = ("backward", "forward")  # the order they run in
STATES_FOLDER = "states"          # in the store's folder: the memory states at keyframes (keep_states)


class CheckpointMismatch(ValueError):
    """The checkpoint belongs to another run; the message says what differs."""


@dataclass
class Checkpoint:
    """Where and how often to save a propagation's progress: every ``every`` frames or
    ``every_s`` seconds, whichever comes first (0: only when cancelled). ``extra``: the caller's
    settings that must be the same to resume (e.g. the command line's output options)."""

    path: Path
    every: int = 250
    every_s: float = 60.0
    extra: dict = field(default_factory=dict)

    def due(self, frames, seconds):
        return bool(self.every and frames >= self.every) or bool(self.every_s and seconds >= self.every_s)

    def exists(self):
        return Path(self.path).is_file()


class Propagation:
    """Propagate ``session`` over clip frames ``[start, end)`` of which ``frames`` (a sequence of
    ``[H,W,3]``) holds ``first_frame_index ..``; see :meth:`Session.propagate`.

    ``store``: where results go (a temporary one under the default cache root if None);
    ``retain=False``: final frames are handed to ``on_final`` and not kept.

    Part of a run again (:mod:`.span`): ``span=(lo, hi)`` runs each pass only over its frames
    inside ``[lo, hi)``, writing into ``result`` (the run's :class:`PropagationResult` over
    ``[start, end)``, other frames already in it); ``seeds``: ``{pass: PassState}`` to start a
    pass from instead of a fresh one. ``keep_states=True``: ``key_states`` (a
    :class:`~.keyframe_states.KeyframeStates` in the store's ``states`` folder, or the one given
    as ``keep_states``) gets each pass's state just before it steps each keyframe, on disk."""

    def __init__(self, session, frames, first_frame_index=0, direction="forward", start=None, end=None,
                 store=None, retain=True, shot_length=None, *, span=None, seeds=None, result=None,
                 keep_states=False):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        if not session.keyframes:
            raise ValueError("the session has no annotation: add an annotation frame before propagating")
        n = len(frames)
        if n == 0:
            raise ValueError("no frames to propagate over: connect the shot's frames")
        lo, hi = first_frame_index, first_frame_index + n
        start = lo if start is None else max(int(start), lo)
        end = hi if end is None else min(int(end), hi)
        if start >= end:
            raise ValueError(f"frame range [{start}, {end}) is empty or outside the frames given "
                             f"(clip frames {lo}..{hi - 1})")
        # The keyframes give the size; each frame is checked as it is read (no extra read here,
        # which for a video would be a seek).
        frame_hw = tuple(session.frame_size)
        self.session = session
        self.frames = frames
        self.first = first_frame_index
        self.count = n
        # The shot ends with the frames given unless the caller says otherwise (a chunk of a
        # longer shot given as its own batch of frames).
        self.shot_length = hi if shot_length is None else int(shot_length)
        self.direction = direction
        self.start, self.end = start, end
        self.frame_hw = frame_hw
        self.ids = list(session.object_ids)
        self.ranges = pass_ranges(direction, [k.frame_index for k in session.keyframes], start, end)
        if span is not None:
            self.ranges = {name: within(rng, span) for name, rng in self.ranges.items()}
        self.seeds = dict(seeds or {})
        self.keys_by_object = keyframes_by_object(session.keyframes)
        if result is not None:
            self.store, self.result = result.store, result
        else:
            self.store = store if store is not None else ResultStore.temporary()
            in_range = [k for k in session.keyframes if start <= k.frame_index < end]
            self.result = PropagationResult(self.ids, frame_hw, in_range, self.store, (start, end), retain)
        if keep_states is True:
            keep_states = KeyframeStates(self.store.folder / STATES_FOLDER)
        self.key_states = None if keep_states is False or keep_states is None else keep_states
        self.taken_with = {k.frame_index: k for k in session.keyframes}
        self.states = {"forward": session.forward_state, "backward": session.backward_state}
        self.phase = {name: ("pending" if self.ranges[name] else "skipped") for name in PASSES}
        self.next = {}            # pass -> next clip frame it will step
        self._pass = None         # the pass running now
        self._done = 0
        self.resumed_at = 0       # frames of work a resumed run did not do again
        self._releasable = []     # frames whose waiting backward result may go at the next checkpoint

    # ------------------------------------------------------------------ facts
    @property
    def total(self):
        """Frames of work over every pass that runs."""
        return sum(hi - lo for lo, hi in filter(None, self.ranges.values()))

    def indices(self, name):
        lo, hi = self.ranges[name]
        return list(range(lo, hi)) if name == "forward" else list(range(hi - 1, lo - 1, -1))

    def describe(self):
        """What identifies this run for a checkpoint (JSON-able)."""
        return {"direction": self.direction, "start": self.start, "end": self.end,
                "first_frame_index": self.first, "frames": self.count, "frame_hw": list(self.frame_hw)}

    # -------------------------------------------------------------------- run
    def run(self, progress=None, cancel=None, on_final=None, checkpoint=None, resume=False):
        """Run every pass; returns ``(new_session, result)``. ``progress(done, total)`` and
        ``cancel()`` are called every frame (``cancel`` may return True or raise; the input
        session is never modified). ``on_final(index, result)`` is called as soon as a frame's
        result is final (``result.probabilities(index)`` then reads it). ``checkpoint``: save
        progress there (:class:`Checkpoint`); ``resume=True``: continue from it if it exists."""
        if resume and checkpoint is not None and checkpoint.exists():
            self._load(checkpoint)
        at_boundary = [False]

        def checked_cancel():
            if cancel is None:
                return False
            try:
                stop = cancel()
            except BaseException:
                at_boundary[0] = True
                raise
            at_boundary[0] = bool(stop)
            return stop

        current = None
        try:
            for name in PASSES:
                if self.phase[name] in ("skipped", "done"):
                    continue
                current = name
                self._run_pass(name, progress, checked_cancel, on_final, checkpoint)
                current = None
        except BaseException:
            # Only a cancel seen between two frames leaves the memory state whole.
            if checkpoint is not None and at_boundary[0] and current is not None:
                self._save(checkpoint, current)
            raise
        self.store.clear(BACKWARD_AREA)
        out = self.session.replace(forward_state=self.states["forward"], backward_state=self.states["backward"])
        return out, self.result

    def _run_pass(self, name, progress, cancel, on_final, checkpoint):
        order = self.indices(name)
        if self.phase[name] == "running":   # resumed from a checkpoint
            state = self.states[name]
            todo = order[order.index(state.next_frame):]
            p = DirectionalPass(self.session, name, self.frame_hw, state.copy())
        else:
            todo = order
            p = self._open_pass(name, order[0])
        self.phase[name] = "running"
        self.next[name] = todo[0]
        self._pass = p
        step = 1 if name == "forward" else -1
        since = [0, time.monotonic()]

        def frame_of(i):
            frame = self.frames[i - self.first]
            hw = tuple(frame.shape[:2])
            if hw != self.frame_hw:
                raise ValueError(f"frame {i} is {hw[0]}x{hw[1]} but the annotations were drawn on "
                                 f"{self.frame_hw[0]}x{self.frame_hw[1]} frames: use the same shot at the same size")
            return frame

        def on_frame(i, prob):
            entry = UNREACHED if prob is None else to_session_order(prob, p.state.objects.ids, self.ids)
            self._handle(name, i, entry, on_final)
            self.next[name] = i + step
            self._done += 1
            if progress is not None:
                progress(self._done, self.total)
            since[0] += 1
            if checkpoint is not None and i != todo[-1] and checkpoint.due(since[0], time.monotonic() - since[1]):
                wanted[0] = True

        def save_now():  # the pass has handed over every result: its state matches self.next
            wanted[0] = False
            self._save(checkpoint, name)
            since[:] = [0, time.monotonic()]

        wanted = [False]
        keep = None if self.key_states is None else (lambda i, state: self.key_states.put(name, i, state,
                                                                                         self.taken_with))
        p.engine.set_shot_length(self.shot_length)
        p.run(self.frames, todo, frame_of, on_frame, cancel, sync=(lambda: wanted[0], save_now), at_keyframe=keep)
        self.states[name] = p.finish()
        self.phase[name] = "done"
        self._pass = None

    def _open_pass(self, name, first_index):
        """A pass continuing the session's state in that direction when it stopped exactly at
        ``first_index`` (chunks of a long shot), else a fresh one; a seed given for the pass first."""
        if self.seeds.get(name) is not None:
            return DirectionalPass(self.session, name, self.frame_hw, self.seeds[name].copy())
        state = self.states[name]
        if state is not None and state.next_frame == first_index:
            return DirectionalPass(self.session, name, self.frame_hw, state.copy())
        return DirectionalPass(self.session, name, self.frame_hw)

    # ---------------------------------------------------------------- frames
    def _covers(self, name, i):
        rng = self.ranges[name]
        return rng is not None and rng[0] <= i < rng[1]

    def _handle(self, name, i, entry, on_final):
        if self.direction != "both":
            return self._final(i, entry, on_final)
        if name == "backward":
            if self._covers("forward", i):
                self.store.put(BACKWARD_AREA, i, entry)   # waits for the forward pass
                return None
            return self._final(i, entry, on_final)
        if self._covers("backward", i):
            waiting = self.store.get(BACKWARD_AREA, i)
            if waiting is None:
                raise StoreError(f"the backward result of frame {i} is missing from {self.store.folder}: "
                                 "the cache folder was changed during the run; delete it and run again")
            entry = combine(self.ids, entry, waiting, object_weights(i, self.keys_by_object),
                            exclusive=not getattr(self.session.model.network, "independent_objects", False))
            self._releasable.append(i)
        return self._final(i, entry, on_final)

    def _final(self, i, entry, on_final):
        self.result.put(i, entry)
        if on_final is not None:
            on_final(i, self.result)

    # ----------------------------------------------------------- checkpoints
    def _save(self, checkpoint, running):
        from .storage import save_session
        self.store.flush()   # waiting backward results are on disk before the checkpoint names them
        states = dict(self.states)
        states[running] = self._pass.snapshot(self.next[running])
        session = self.session.replace(forward_state=states["forward"], backward_state=states["backward"])
        extra = {"propagation": self.describe(), "phase": dict(self.phase), "done": self._done,
                 "caller": checkpoint.extra}
        save_session(session, checkpoint.path, extra=extra, what="checkpoint")
        # Backward results already blended are needed again only by a resume from an older
        # checkpoint; now that this one is written they can go.
        for i in self._releasable:
            self.store.discard(BACKWARD_AREA, i)
        self._releasable = []

    def _load(self, checkpoint):
        from .storage import read_session
        fields, extra = read_session(checkpoint.path, self.session.model)
        saved = type(self.session)(**fields)
        where = f"the checkpoint {checkpoint.path}"
        if not extra or "propagation" not in extra:
            raise CheckpointMismatch(f"{where} is a session file, not a checkpoint of a run")
        from .file_schema import SchemaError, check_checkpoint_extra
        try:
            check_checkpoint_extra(extra)
        except SchemaError as exc:
            raise CheckpointMismatch(f"{where} is damaged ({exc}): start over without resuming") from None
        differences = [k for k, v in self.describe().items() if extra["propagation"].get(k) != v]
        differences += [k for k, v in checkpoint.extra.items() if extra.get("caller", {}).get(k) != v]
        differences += setup_differences(saved, self.session)
        if differences:
            raise CheckpointMismatch(f"{where} is of another run ({', '.join(differences)} differ): "
                                     "start over without resuming")
        self.states = {"forward": saved.forward_state, "backward": saved.backward_state}
        self.phase = dict(extra["phase"])
        self._done = self.resumed_at = extra["done"]
        for name in PASSES:
            if self.phase[name] == "running" and self.states[name] is None:
                raise CheckpointMismatch(f"{where} is damaged (no {name} state): start over without resuming")


def within(rng, span):
    """The part of the half-open range ``rng`` (or None) inside ``span``; None when empty."""
    if rng is None:
        return None
    lo, hi = max(rng[0], span[0]), min(rng[1], span[1])
    return (lo, hi) if lo < hi else None


def setup_differences(a, b):
    """Names of what differs between two sessions' settings and keyframes (not memory state)."""
    out = [name for name in ("config", "internal_size", "antialias", "tta_scales", "tta_flip")
           if getattr(a, name) != getattr(b, name)]
    ka, kb = a.keyframes, b.keyframes
    if not (len(ka) == len(kb) and all(same_keyframe(x, y) for x, y in zip(ka, kb))):
        out.append("keyframes")
    return out


__all__ = ["Checkpoint", "CheckpointMismatch", "Propagation", "PropagationCancelled", "setup_differences"]
