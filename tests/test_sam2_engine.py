"""SAM 2.1 behind the engine: a pass equals the faithful tracker (mask prompts, keyframes put
in before the pass, reverse order), chunks equal one pass, partial keyframes and late objects."""
import numpy as np
import pytest
import torch

from memvos_core.config import MemoryConfig
from memvos_core.runtime.engine import InferenceEngine
from memvos_core.families.sam2.checkpoint import build_sam2
from memvos_core.families.sam2.video import VideoTracker
from sam2_fixture import CLIP, FIXTURE, generated_state, official_frame
from PIL import Image

SIZE = 128       # a small image size keeps this file fast; the parity files use 512 and 1024
FRAMES = 5
CONFIG = MemoryConfig(image_size=SIZE)


@pytest.fixture(scope="module")
def net():
    return build_sam2(generated_state(), "generated", SIZE)


@pytest.fixture(scope="module")
def clip():
    images = [official_frame(f"{CLIP}/frames/{t:05d}.png", SIZE)[0] for t in range(FRAMES)]
    # Frame 0's and frame 10's annotations of run B serve as the prompts of every frame here.
    ann = [np.array(Image.open(f"{FIXTURE}/run_B/annotations/{t:05d}.png")) for t in (0, 10)]
    labels = [ann[t % 2] for t in range(FRAMES)]
    return images, labels


def one_hot(label, ids, size=SIZE):
    m = torch.stack([torch.from_numpy(label == i) for i in ids]).float()[None]
    return (torch.nn.functional.interpolate(m, size=(size, size), mode="bilinear", antialias=True)[0] >= 0.5).float()


def tracker_lows(net, clip, prompts, order, reverse=False, num_frames=16):
    images, labels = clip
    tracker = VideoTracker(net, lambda t: images[t][None], (SIZE, SIZE), num_frames)
    for t in prompts:
        for o in (1, 2):
            tracker.add_mask(t, o, one_hot(labels[t], [o])[0].bool())
    lows = {}
    for t, _, _, _ in tracker.propagate(start=order[0], reverse=reverse, end=order[-1]):
        lows[t] = [(tr.cond.get(t) or tr.recent.get(t)).low for tr in tracker.objects.values()]
    return lows


def engine_pass(net, clip, order, preload=(), annotate=(), engine=None, stop=None, shot_length=None):
    images, labels = clip
    if engine is None:
        engine = InferenceEngine(net, CONFIG, "cpu")
        engine.set_shot_length(shot_length)
    if not engine.num_objects:
        engine.set_num_objects(2)
        for t in preload:
            engine.add_permanent(images[t], one_hot(labels[t], [1, 2]))
    lows = {}
    for n, t in enumerate(order):
        if stop is not None and n == stop:
            return engine, lows
        mask = one_hot(labels[t], [1, 2]) if t in preload or t in annotate else None
        with torch.no_grad():
            engine.step(images[t], mask, [1, 2] if mask is not None else None, write_memory=t not in preload)
        lows[t] = [_low(engine.model, i, engine.curr_ti) for i in engine.model.object_ids]
    return engine, lows


def _low(model, i, ti):
    st = model.objects[i]
    for reached, out in st.cond.values():
        if reached == ti:
            return out.low
    return st.recent[ti].low


def assert_same(a, b, tol=1e-4):
    assert a.keys() == b.keys()
    for t in a:
        for x, y in zip(a[t], b[t]):
            assert float((torch.sigmoid(x) - torch.sigmoid(y)).abs().max()) <= tol, t


def test_a_pass_with_keyframes_ahead_equals_the_official_tracking(net, clip):
    """Keyframes on frames 0 and 3, both read from frame 1 on (as the official predictor does
    with every prompt), the pointer of frame 4 only once reached."""
    order = list(range(FRAMES))
    assert_same(engine_pass(net, clip, order, preload=(0, 3))[1], tracker_lows(net, clip, (0, 3), order))


def test_a_backward_pass_is_the_official_reverse_tracking(net, clip):
    order = list(range(FRAMES - 1, -1, -1))
    assert_same(engine_pass(net, clip, order, annotate=(FRAMES - 1,))[1],
                tracker_lows(net, clip, (FRAMES - 1,), order, reverse=True))


@pytest.fixture(scope="module")
def short_pass(net, clip):
    """A pass told its shot has 5 frames, prompted on frame 0."""
    return engine_pass(net, clip, list(range(FRAMES)), annotate=(0,), shot_length=FRAMES)[1]


def test_a_short_shot_codes_its_pointers_as_the_official_predictor_does(net, clip, short_pass):
    """A 5-frame shot: pointers normalised by 4, as the official predictor with num_frames 5;
    coding them as a shot of 16 frames or more would (a bare engine not told the length does
    that) moves the masks visibly."""
    order = list(range(FRAMES))
    assert_same(short_pass, tracker_lows(net, clip, (0,), order, num_frames=FRAMES))
    long = tracker_lows(net, clip, (0,), order)
    moved = max(float((torch.sigmoid(a) - torch.sigmoid(b)).abs().max())
                for t in order[1:] for a, b in zip(short_pass[t], long[t]))
    assert moved > 1e-3


def test_a_pass_in_two_chunks_through_a_saved_state_equals_one_pass(net, clip, short_pass):
    order = list(range(FRAMES))
    first, lows = engine_pass(net, clip, order, annotate=(0,), stop=3, shot_length=FRAMES)
    tensors, meta = first.state()
    second = InferenceEngine.from_state(net, CONFIG, {k: v.clone() for k, v in tensors.items()}, meta)
    assert second.shot_length == FRAMES
    lows.update(engine_pass(net, clip, order[3:], engine=second)[1])
    assert_same(short_pass, lows, tol=0)


def test_partial_keyframes_and_late_objects(net, clip):
    images, labels = clip
    engine = InferenceEngine(net, CONFIG, "cpu")
    engine.set_num_objects(1)
    engine.step(images[0], one_hot(labels[0], [1]), [1])
    engine.step(images[1])
    engine.set_num_objects(2)   # object 2 enters on frame 2, object 1 is not annotated there
    prob = engine.step(images[2], one_hot(labels[2], [0, 2]), [2])
    assert prob.shape == (3, SIZE, SIZE)
    model = engine.model
    first, second = model.object_ids
    assert 2 in model.objects[first].recent and [r for r, _ in model.objects[second].cond.values()] == [2]
    prob = engine.step(images[3])
    assert prob.shape == (3, SIZE, SIZE) and torch.allclose(prob.sum(0), torch.ones(SIZE, SIZE), atol=1e-5)
