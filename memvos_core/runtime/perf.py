"""Speed options of the propagation engine. None of them changes what is computed, only how:
results agree with the plain engine to rounding (``bench/bench_propagation.py`` measures both).

* ``sparse_readout``: the top-k readout gathers the k chosen memory values of each query
  (an embedding-bag) instead of scattering a dense ``[N_mem, HW]`` affinity and multiplying it;
  the similarity is laid out query-major so the top-k runs along contiguous rows.
* ``preallocate``: memory stores write into fixed-size buffers (working memory
  ``max_mid_term_frames * HW``, long-term ``max_long_term_elements``, permanent doubling) instead
  of re-concatenating at every write; exported state is copied, never shared with a buffer.
* ``channels_last``: NHWC layout for the convolutions. It is a property of the *network*
  (converted once, in place, values unchanged), so every engine on that network runs NHWC.
* ``fuse``: the engine runs an inference copy of the network (``memvos_core/families/xmem/fused.py``) that
  shares its parameters but folds each BatchNorm into the convolution before it, convolves the
  image-level features of a fusion block once per frame instead of once per object and, on
  CPUs with oneDNN, runs the encoders' ResNet blocks as fused convolution+ReLU+add calls.
* ``key_batch``: how many upcoming frames :class:`FramesAhead` key-encodes together, ahead of
  the sequential loop (the key encoder does not depend on memory).
* ``compile``: ``""`` (eager), ``"default"`` (torch.compile) or ``"reduce-overhead"``
  (torch.compile with CUDA graphs; outputs are cloned because graph replays reuse them).
"""
import threading
import weakref
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import torch

from ..families.registry import family_of

COMPILE_MODES = ("", "default", "reduce-overhead")


@dataclass(frozen=True)
class EngineOptions:
    sparse_readout: bool = False
    preallocate: bool = False
    channels_last: bool = False
    fuse: bool = False
    key_batch: int = 1
    compile: str = ""

    def __post_init__(self):
        if int(self.key_batch) < 1:
            raise ValueError(f"engine option key_batch={self.key_batch} must be at least 1")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"engine option compile={self.compile!r} is not one of {COMPILE_MODES}")

    @classmethod
    def plain(cls):
        """The straightforward implementation every variant is compared with."""
        return cls()

    @classmethod
    def default_for(cls, device):
        """The fastest options whose masks agree with the plain engine, as measured.

        CPU (bench/bench_vs_official.py, 854x480, against the official XMem and the plain
        engine): sparse readout, preallocated buffers, channels_last and the fused network
        (labels identical wherever the official's top-2 margin exceeds 0.05). On a 2-core
        AVX-512 Xeon, 2 threads, 1 / 2 objects: 1.26x / 1.31x the official's speed, against
        1.18x / 1.21x without channels_last; 1 thread, 1 object: 1.10x against 1.06x.
        Batching key encoding gains nothing there (each frame's convolutions already fill the
        cores).
        CUDA: unmeasured (no GPU was lent so far): the options that do not change the
        network, with key batching (fewer, larger kernel launches); bench/gpu_all.sh measures
        every variant and is what this should be set from."""
        if torch.device(device).type == "cpu":
            return cls(sparse_readout=True, preallocate=True, channels_last=True, fuse=True)
        return cls(sparse_readout=True, preallocate=True, key_batch=4)

    def replace(self, **changes):
        return replace(self, **changes)

    def to_dict(self):
        return asdict(self)


_OVERRIDE = threading.local()


@contextmanager
def engine_options(options):
    """Engines created inside this block, in this thread, use ``options`` instead of their
    device's default: benchmarks compare variants through the very session code the CLI runs."""
    before = getattr(_OVERRIDE, "options", None)
    _OVERRIDE.options = options
    try:
        yield options
    finally:
        _OVERRIDE.options = before


def resolve_options(device, options=None):
    """The options an engine on ``device`` runs with: ``options``, else the :func:`engine_options`
    override, else the device default; minus what the device cannot run."""
    device = torch.device(device)
    if options is None:
        options = getattr(_OVERRIDE, "options", None) or EngineOptions.default_for(device)
    if options.sparse_readout and not sparse_readout_supported(device):
        options = options.replace(sparse_readout=False)
    return options


def sparse_readout_supported(device):
    """Whether ``device`` has a kernel for the sparse readout's ``embedding_bag`` with per-sample
    weights. MPS has none before torch 2.10, and ComfyUI does not turn on the CPU fallback, so
    there the dense readout (plain matrix products) is used instead."""
    if torch.device(device).type != "mps":
        return True
    return _torch_version() >= (2, 10)


def _torch_version():
    parts = []
    for piece in torch.__version__.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class FramesAhead:
    """The propagation loop's frames, prepared, with their key features encoded ``key_batch``
    frames at a time ahead of the loop when the engine's options ask for it.

        ahead = FramesAhead(engine, prepare, order)   # prepare(i) -> normalised [3,h,w] image
        for i in order:
            image, feats = ahead.take(i)              # feats is None without batching
            engine.step(image, ..., feats=feats)

    ``order``: the frame indices in the order the loop steps them. A frame the loop skips is
    never encoded: a batch starts at the frame asked for and covers the next ones in ``order``.
    Engines without :meth:`~.engine.InferenceEngine.encode_keys` (test-time augmentation) get
    one prepared image at a time.
    """

    def __init__(self, engine, prepare, order):
        options = getattr(engine, "options", None)
        batched = options is not None and hasattr(engine, "encode_keys")
        self.batch = int(options.key_batch) if batched else 1
        self.engine, self.prepare = engine, prepare
        self.order = list(order)
        self.position = {index: k for k, index in enumerate(self.order)}
        self.ready = {}

    def take(self, index):
        if index in self.ready:
            return self.ready.pop(index)
        self.ready.clear()  # encoded for a different sequence of frames
        image = self.prepare(index)
        if self.batch <= 1:
            return image, None
        start = self.position[index]
        upcoming = self.order[start:start + self.batch]
        images = [image] + [self.prepare(i) for i in upcoming[1:]]
        self.ready = {i: (im, f) for i, im, f in zip(upcoming, images, self.engine.encode_keys(images))}
        return self.ready.pop(index)


_PREPARED = weakref.WeakKeyDictionary()   # network -> {(fuse, compile): (placement, calls)}


def prepare_network(network, options):
    """The network calls the engine makes, with ``options``' layout, rewrites and compilation
    applied."""
    if options.channels_last and not getattr(network, "_memvos_channels_last", False):
        network.to(memory_format=torch.channels_last)
        network._memvos_channels_last = True
    rewrite = family_of(network).rewrite
    fuse = options.fuse and rewrite is not None
    if not fuse and not options.compile:
        return network
    first = next(network.parameters())
    placement = (first.device, first.dtype, getattr(network, "_memvos_channels_last", False))
    cache = _PREPARED.setdefault(network, {})
    held = cache.get((fuse, options.compile))
    if held is None or held[0] != placement:
        # One copy per network and kind: a network moved to another device (ComfyUI offloading
        # it) gets a new one, and the old one's tensors are let go with it.
        calls = rewrite(network, first.device) if fuse else network
        held = cache[fuse, options.compile] = (placement, CompiledCalls(calls, options.compile) if options.compile else calls)
    return held[1]


class CompiledCalls:
    """``encode_key``/``encode_value``/``decode`` of a network through torch.compile."""

    def __init__(self, network, mode):
        self.network = network
        self.clone_outputs = mode == "reduce-overhead"
        compile_kw = {"mode": mode, "dynamic": False}
        self._encode_key = torch.compile(network.encode_key, **compile_kw)
        self._encode_value = torch.compile(network.encode_value, **compile_kw)
        self._decode = torch.compile(network.decode, **compile_kw)

    def __getattr__(self, name):  # stride, init_hidden, dims, ... come from the network
        return getattr(self.network, name)

    def _out(self, result):
        if not self.clone_outputs:
            return result
        return _map_tensors(result, torch.clone)

    def encode_key(self, *args):
        if self.clone_outputs:
            torch.compiler.cudagraph_mark_step_begin()
        return self._out(self._encode_key(*args))

    def encode_value(self, *args):
        if self.clone_outputs:
            torch.compiler.cudagraph_mark_step_begin()
        return self._out(self._encode_value(*args))

    def decode(self, *args):
        if self.clone_outputs:
            torch.compiler.cudagraph_mark_step_begin()
        return self._out(self._decode(*args))


def _map_tensors(x, fn):
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_map_tensors(v, fn) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(_map_tensors(v, fn) for v in x)
    return x
