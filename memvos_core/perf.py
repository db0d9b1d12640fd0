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
* ``key_batch``: how many upcoming frames a caller should key-encode together with
  :meth:`InferenceEngine.encode_keys` (the key encoder does not depend on memory).
* ``compile``: ``""`` (eager), ``"default"`` (torch.compile) or ``"reduce-overhead"``
  (torch.compile with CUDA graphs; outputs are cloned because graph replays reuse them).
"""
import weakref
from dataclasses import asdict, dataclass, replace

import torch

COMPILE_MODES = ("", "default", "reduce-overhead")


@dataclass(frozen=True)
class EngineOptions:
    sparse_readout: bool = False
    preallocate: bool = False
    channels_last: bool = False
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
        """The fastest options whose masks agree with the plain engine (J >= 0.995 on every frame,
        bench/bench_propagation.py). Measured on a 2-core CPU: sparse readout, preallocated
        buffers and batched key encoding pass; channels_last did not (worst J 0.988 on the long
        clip: its different rounding grows over a hundred frames with the generated weights).
        CUDA: the same until a GPU run of the benchmark shows what passes and pays there."""
        del device  # one answer for now; the seam where a GPU measurement will change it
        return cls(sparse_readout=True, preallocate=True, key_batch=4)

    def replace(self, **changes):
        return replace(self, **changes)

    def to_dict(self):
        return asdict(self)


_PREPARED = weakref.WeakKeyDictionary()   # network -> {compile mode: NetworkCalls}


def prepare_network(network, options):
    """The network calls the engine makes, with ``options``' layout and compilation applied."""
    if options.channels_last and not getattr(network, "_memvos_channels_last", False):
        network.to(memory_format=torch.channels_last)
        network._memvos_channels_last = True
    if not options.compile:
        return network
    cache = _PREPARED.setdefault(network, {})
    if options.compile not in cache:
        cache[options.compile] = CompiledCalls(network, options.compile)
    return cache[options.compile]


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
