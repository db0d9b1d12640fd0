"""SAM 2.1's object-pointer time code for any shot length, checked against the formula worked
out by hand: offsets divided by ``min(shot length, 16) - 1``, sines then cosines over 128
frequencies ``10000 ** (2 * (i // 2) / 128)``, then the network's projection; and which
pointers a frame reads (its conditioning frames, then the last ``min(length, 16) - 1``)."""
import math

import pytest
import torch

from memvos_core.families.sam2.network import Sam2Network
from memvos_core.families.sam2.video import FrameOutput, attend_memory


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = Sam2Network("tiny", image_size=64)
    with torch.no_grad():
        n.obj_ptr_tpos_proj.weight.normal_()
        n.obj_ptr_tpos_proj.bias.normal_()
    return n


def by_hand(offsets, shot_length):
    span = min(shot_length, 16) - 1
    rows = []
    for o in offsets:
        x = o / span
        freqs = [10000 ** (2 * (i // 2) / 128) for i in range(128)]
        rows.append([math.sin(x / f) for f in freqs] + [math.cos(x / f) for f in freqs])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("shot_length", [2, 5, 12, 16, 40, 5000])
def test_the_time_code_is_normalised_by_the_shot_length_up_to_16(net, shot_length):
    offsets = [1, 3, -2, min(shot_length, 16) - 1]
    proj = net.obj_ptr_tpos_proj
    want = by_hand(offsets, shot_length) @ proj.weight.double().T + proj.bias.double()
    with torch.no_grad():
        got = net.pointer_positions(offsets, shot_length).double()
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())


class Recorder:
    """The parts of the network ``attend_memory`` uses, recording which pointers it reads."""

    def __init__(self, real):
        self.maskmem_tpos_enc = real.maskmem_tpos_enc.detach()
        self.mem_dim, self.hidden_dim = real.mem_dim, real.hidden_dim

    def pointer_positions(self, offsets, num_frames):
        self.offsets, self.num_frames = list(offsets), num_frames
        return torch.zeros(len(offsets), self.mem_dim)

    def attend_memory(self, feat, pos, memory, memory_pos, num_ptr):
        self.memory_tokens = memory.shape[1] - num_ptr
        return feat


def frame(value):
    return FrameOutput(None, torch.full((1, 256), float(value)), None, torch.zeros(1, 64, 2, 2, dtype=torch.bfloat16))


@pytest.mark.parametrize("shot_length,t,want_back", [
    (5, 4, [1, 2, 3]),             # a short shot: every earlier tracked frame
    (12, 11, list(range(1, 11))),
    (40, 30, list(range(1, 16))),  # a long shot: only the last 15
    (40, 10, list(range(1, 10))),
])
def test_a_frame_reads_its_keyframes_and_the_last_min_length_16_minus_1_pointers(net, shot_length, t, want_back):
    rec = Recorder(net)
    recent = {f: frame(f) for f in range(1, t)}      # frame 0 is the keyframe, the others tracked
    attend_memory(rec, torch.zeros(1, 256, 2, 2), None, [(0, frame(0))], recent, t, shot_length)
    assert rec.offsets == [t] + want_back
    assert rec.num_frames == shot_length
    assert rec.memory_tokens == 4 * (1 + min(6, t - 1))   # memories: the keyframe and the last 6
