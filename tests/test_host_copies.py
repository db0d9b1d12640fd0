"""Results copied to the host without a blocking sync per frame (memvos_core.runtime.transfer)."""
import pytest
import torch

from memvos_core.runtime.transfer import HostCopies


class FakeEvent:
    """Stands in for a device event on the CPU: finished when the test says so."""

    log = []

    def __init__(self, device):
        self.device, self.finished, self.waited = device, False, False

    def record(self):
        FakeEvent.log.append(self)

    def query(self):
        return self.finished

    def synchronize(self):
        self.waited = True
        self.finished = True


def test_cpu_tensors_are_handed_back_at_once():
    copies = HostCopies()
    t = torch.arange(6.0)
    assert [(k, v is t) for k, v in copies.put(3, t)] == [(3, True)]
    assert copies.put(4, None) == [(4, None)]
    assert len(copies) == 0 and copies.flush() == []


def test_asynchronous_path_keeps_order_waits_only_beyond_depth_and_copies_out():
    FakeEvent.log.clear()
    copies = HostCopies(depth=2, asynchronous=True, make_event=FakeEvent)
    frames = {i: torch.full((2, 3), float(i)) for i in range(5)}
    assert copies.put(0, frames[0]) == []            # copy running: nothing to hand over yet
    assert copies.put(1, frames[1]) == []
    handed = copies.put(2, frames[2])                # three in flight > depth 2: wait for the oldest
    assert [k for k, _ in handed] == [0] and FakeEvent.log[0].waited
    assert not FakeEvent.log[1].waited
    FakeEvent.log[2].finished = True                 # a later copy finishing first stays queued
    assert copies.done() == []
    FakeEvent.log[1].finished = True
    assert [k for k, _ in copies.done()] == [1, 2]
    assert copies.put(3, None) == [(3, None)]        # nothing pending before it: passes at once
    copies.put(4, frames[4])
    rest = copies.flush()
    assert [k for k, _ in rest] == [4] and len(copies) == 0
    assert torch.equal(rest[0][1], frames[4])
    assert rest[0][1].untyped_storage().data_ptr() != frames[4].untyped_storage().data_ptr()
    assert not any(e.device.type != "cpu" for e in FakeEvent.log)


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        HostCopies(depth=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bench/gpu_all.sh runs it)")
def test_cuda_copy_does_not_wait_for_the_device():
    copies = HostCopies(depth=8)
    prob = torch.rand(3, 480, 864, device="cuda")
    quantized = (prob.clamp(0, 1) * 65535).round().to(torch.uint16)   # stays on the device
    torch.cuda.synchronize()
    torch.cuda._sleep(200_000_000)  # keep the GPU busy well past the put() below
    assert copies.put(0, quantized) == []
    (key, host), = copies.flush()
    assert key == 0 and host.device.type == "cpu" and not host.is_pinned()
    assert torch.equal(host, quantized.cpu())
