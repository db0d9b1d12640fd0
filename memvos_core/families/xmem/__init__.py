"""XMem (and the XMem++ keyframe schedule): the family's declaration (see ..registry).

Per clip: working, permanent and long-term memory with object groups
(:class:`~memvos_core.memory.MemoryManager`); per object: the hidden state (64 channels);
nothing per frame. Network: :mod:`memvos_core.network.xmem`.
"""
from ..registry import Family, Setting, WeightFile

_RELEASE = "https://github.com/hkchengrex/XMem/releases/download/v1.0/"
_CODE = "MIT (hkchengrex/XMem)"
_WEIGHTS = ("none stated; trained on DAVIS, YouTube-VOS, static image sets and (s012) BL30K, whose terms "
            "apply")


def _recognise(state):
    from .checkpoint import recognise
    return recognise(state)


def _build(state, source):
    from .checkpoint import build
    return build(state, source)


def _model(network, config, device, precision, options):
    from .model import XMemModel
    return XMemModel(network, config, device, precision, options)


def _evaluation_config(config, num_frames):
    """XMem's evaluation script counts long-term usage only when pruning can happen (in the
    ``evaluation`` memory mode, the one that script runs)."""
    return config.with_usage_rule(num_frames) if config.memory_mode == "evaluation" else config


def _rewrite(network, device):
    from .fused import fused_network
    return fused_network(network, device)


def _encode_keys(network, images):
    from ..base import padded_keys
    return padded_keys(network, images)  # XMem pads after normalising


def _synthetic(variant):
    from .checkpoint import synthetic
    return synthetic(variant)


def _no_zero(value):
    return ("memory setting deep_update_every=0 is not allowed: use -1 (with memory writes) or a positive "
            "interval") if value == 0 else None


FAMILY = Family(
    name="xmem", title="XMem", recognise=_recognise, marker="key_encoder.", build=_build, model=_model,
    encode_keys=_encode_keys, synthetic=_synthetic, rewrite=_rewrite, evaluation_config=_evaluation_config,
    keeps="per clip: working, permanent and long-term memory (object groups); per object: a 64-channel "
          "hidden state; per frame: nothing",
    weights=(
        WeightFile("XMem.pth", _RELEASE + "XMem.pth", None,
                   "XMem, the default release model (static-image pretraining + video training)", _CODE, _WEIGHTS),
        WeightFile("XMem-s012.pth", _RELEASE + "XMem-s012.pth", None,
                   "XMem with BL30K synthetic-video pretraining", _CODE, _WEIGHTS),
    ),
    settings=(
        Setting("deep_update_every", -1, "Deep update of the hidden state every this many frames; -1 = with "
                "every memory write.", -1, 1000, check=_no_zero, widget_after="enable_long_term"),
    ),
)
