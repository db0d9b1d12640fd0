"""Host memory per frame over a long synthetic shot, propagated in chunks through sessions.

    python bench/bench_session_memory.py [--frames 2000] [--chunk 200] [--size 64]

Frames are generated one at a time (never the whole shot); each chunk's results are turned into
label maps and dropped, as the nodes and the CLI do. Prints RSS after each chunk and the size of
the memory state the session carries, which must stay flat once working memory is full.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memvos_core.config import MemoryConfig  # noqa: E402
from memvos_core.runtime.model import load_model  # noqa: E402
from memvos_core.network.synthetic import synthetic_state_dict  # noqa: E402
from memvos_core.session import Session  # noqa: E402


def rss_mib(field="VmRSS"):
    """This process's resident memory in MiB (``field="VmHWM"``: its peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class LazyShot:
    """A shot of moving discs whose frames are drawn when indexed (``[H,W,3]`` float)."""

    def __init__(self, first, count, size):
        self.first, self.count, self.size = first, count, size
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        self.yy, self.xx = yy, xx

    def __len__(self):
        return self.count

    def labels(self, t):
        cx = (self.size * 0.3 + 2 * t) % self.size
        disc = (self.xx - cx) ** 2 + (self.yy - self.size / 2) ** 2 < (self.size / 5) ** 2
        return disc.to(torch.uint8)

    def __getitem__(self, i):
        t = self.first + i
        img = torch.full((self.size, self.size, 3), 0.3)
        img[..., 1] += 0.2 * torch.sin(self.xx / 5.0 + t * 0.1)
        img[self.labels(t).bool()] = torch.tensor([0.9, 0.2, 0.1])
        return img


def state_bytes(session):
    state = session.forward_state
    return sum(t.numel() * t.element_size() for t in state.tensors.values()) if state else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--max-long-term", type=int, default=2000,
                    help="long-term capacity in elements (XMem: 10000, about 6 frames at 480p; at a "
                         "tiny test size that would take thousands of frames to fill)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model(synthetic_state_dict())
    shot0 = LazyShot(0, args.chunk, args.size)
    config = MemoryConfig(max_long_term_elements=args.max_long_term)
    session = Session(model, config, internal_size=-1).add_label_map(0, shot0[0], shot0.labels(0))
    print(f"{'frames':>7} {'RSS MiB':>8} {'state KiB':>10} {'ms/frame':>9}")
    base = None
    for first in range(0, args.frames, args.chunk):
        shot = LazyShot(first, min(args.chunk, args.frames - first), args.size)
        start = time.perf_counter()
        with torch.inference_mode():
            session, result = session.propagate(shot, first_frame_index=first)
            labels = [result.labels(i) for i in result.frame_indices]  # what a consumer keeps
        del result, labels
        ms = (time.perf_counter() - start) * 1000 / len(shot)
        rss = rss_mib()
        base = base or rss
        print(f"{first + len(shot):>7} {rss:>8.1f} {state_bytes(session) / 1024:>10.1f} {ms:>9.1f}")
    print(f"RSS growth after the first chunk: {rss - base:+.1f} MiB over {args.frames - args.chunk} frames")


if __name__ == "__main__":
    main()
