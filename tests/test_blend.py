"""direction="both": the per-object blend, which passes run, and when frames become final."""
import pytest
import torch

from memvos_core.runtime.model import load_model
from memvos_core.session import Session, StoredFrame, combine
from memvos_core.session.blend import QUANT, object_weights, pass_ranges
from session_helpers import moving_discs, session_with_keys, small_config


@pytest.fixture(scope="module")
def model(synthetic_weights):
    return load_model(synthetic_weights)


def late_entry_shot(num_frames=12, height=48, width=64, enters=7):
    """Three discs on their own rows; object 3 enters at frame ``enters``."""
    gen = torch.Generator().manual_seed(1)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=gen), size=(height, width),
                                           mode="bilinear")[0]
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    colours = [(0.9, 0.2, 0.2), (0.2, 0.9, 0.2), (0.2, 0.3, 0.95)]
    frames, labels = [], []
    for t in range(num_frames):
        img, lab = base.clone(), torch.zeros(height, width, dtype=torch.uint8)
        for o in range(3):
            if o == 2 and t < enters:
                continue
            cx, cy = (12 + 2 * t + 20 * o) % width, height * (o + 1) / 4
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < 7 ** 2
            img[:, disc] = torch.tensor(colours[o])[:, None]
            lab[disc] = o + 1
        frames.append(img.permute(1, 2, 0))
        labels.append(lab)
    return torch.stack(frames), torch.stack(labels)


class CountingFrames:
    """A frame sequence that records which frames were read, in order."""

    def __init__(self, frames):
        self.frames, self.reads = frames, []

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        self.reads.append(i)
        return self.frames[i]


def stored(planes, known):
    return StoredFrame((torch.tensor(planes, dtype=torch.float32) * QUANT).round().to(torch.uint16), tuple(known))


def test_the_rule_on_hand_made_frames():
    # Object 1 known to both passes, 2 only forward, 3 only backward.
    f = stored([[[0.6]], [[0.3]], [[0.0]]], (1, 2))
    b = stored([[[0.2]], [[0.0]], [[0.5]]], (1, 3))
    out = combine([1, 2, 3], f, b, {1: 0.75, 2: 0.0, 3: 1.0}).planes.float() / QUANT
    # 1: 0.75*0.6 + 0.25*0.2 = 0.5; 2 and 3 from the pass that knows them whatever the weight;
    # the objects claim 1.3 -> scaled to sum 1, background 0.
    assert out[:, 0, 0].tolist() == pytest.approx([0.5 / 1.3, 0.3 / 1.3, 0.5 / 1.3], abs=2e-5)
    # Under 1 nothing is rescaled, and a value taken from one pass is kept exactly.
    f2, b2 = stored([[[0.6]], [[0.1]]], (1, 2)), stored([[[0.2]], [[0.2]]], (1,))
    out2 = combine([1, 2], f2, b2, {1: 0.5, 2: 0.5})
    assert out2.planes[1, 0, 0] == f2.planes[1, 0, 0] and out2.known == (1, 2)
    assert out2.planes[0, 0, 0] == round(0.4 * QUANT)
    # A pass that reached nothing gives way entirely.
    assert combine([1, 2], f2, StoredFrame(None), {1: 0.0, 2: 0.0}) is f2


def test_weights_come_from_each_objects_own_keyframes():
    keys = {1: [0], 2: [0, 10], 3: [17]}   # the example, object 2 also keyed at 10
    assert object_weights(5, keys) == {1: 1.0, 2: 0.5, 3: 0.0}
    assert object_weights(17, keys) == {1: 1.0, 2: 1.0, 3: 1.0}
    assert object_weights(10, keys)[2] == 1.0 and object_weights(20, keys)[3] == 1.0


def test_passes_run_only_where_they_contribute():
    assert pass_ranges("both", [0], 0, 30) == {"forward": (0, 30), "backward": None}
    assert pass_ranges("both", [29], 0, 30) == {"forward": None, "backward": (0, 30)}
    assert pass_ranges("both", [5, 9], 0, 12) == {"forward": (5, 12), "backward": (0, 10)}
    assert pass_ranges("both", [0, 40], 10, 20) == {"forward": (10, 20), "backward": (10, 20)}
    assert pass_ranges("forward", [5], 0, 12) == {"forward": (0, 12), "backward": None}


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_an_object_known_to_one_pass_is_not_diluted(model, mode):
    """Keyframe 0 annotates objects 1 and 2, keyframe 9 only object 3 (it enters at 7)."""
    frames, labels = late_entry_shot()
    s = Session(model, small_config(mode), internal_size=-1)
    s = s.add_label_map(0, frames[0], labels[0], object_ids=[1, 2])
    s = s.add_label_map(9, frames[9], torch.where(labels[9] == 3, labels[9], 0), object_ids=[3])
    counted = CountingFrames(frames)
    _, both = s.propagate(counted, direction="both")
    _, fwd = s.propagate(frames, direction="forward")
    _, bwd = s.propagate(frames, direction="backward", end=10)   # the backward pass both runs
    # Backward down from the last keyframe, then forward; frames 10, 11 are read once.
    assert counted.reads == list(range(9, -1, -1)) + list(range(12))
    for t in range(1, 9):
        # Objects 1, 2 from the forward pass alone, object 3 from the backward pass alone (neither
        # pass knows the others' objects here); scaled down only where they claim more than 1.
        f, k = fwd.internal(t).float() / QUANT, bwd.internal(t).float() / QUANT
        mixed = torch.stack([f[0], f[1], k[2]])
        total = mixed.sum(0)
        over = total > 1 + 3 / QUANT
        expected = (torch.where(over, mixed / total, mixed) * QUANT).round()
        assert torch.equal(both.internal(t).float(), expected), t
        assert torch.equal(both.internal(t)[:2][:, ~over], fwd.internal(t)[:2][:, ~over]), t
    for t in range(9, 12):               # after object 3's keyframe everything is forward
        assert torch.equal(both.internal(t), fwd.internal(t)), t


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_both_with_one_keyframe_at_the_start_is_the_forward_pass(model, mode):
    frames, labels = moving_discs(num_frames=8)
    s = session_with_keys(model, frames, labels, [0], mode=mode)
    counted = CountingFrames(frames)
    calls = []
    s2, both = s.propagate(counted, direction="both", progress=lambda d, t: calls.append((d, t)))
    _, fwd = s.propagate(frames, direction="forward")
    assert counted.reads == list(range(1, 8)) or counted.reads == list(range(8))  # no backward reads
    assert calls[-1] == (8, 8)
    assert s2.backward_state is None
    for t in range(8):
        assert torch.equal(both.internal(t), fwd.internal(t)), t


def test_frames_become_final_backward_only_first_then_in_order(model):
    frames, labels = moving_discs(num_frames=12)
    s = session_with_keys(model, frames, labels, [3, 8])
    order = []
    _, result = s.propagate(frames, direction="both", on_final=lambda i, r: order.append((i, r.labels(i))))
    assert [i for i, _ in order] == [2, 1, 0] + list(range(3, 12))
    for i, lab in order:
        assert torch.equal(lab, result.labels(i))
    assert result.store.indices("backward") == []    # nothing left waiting
