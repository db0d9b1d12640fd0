"""XMem (and the XMem++ keyframe schedule): the family's declaration (see ..registry).

Per clip: working, permanent and long-term memory with object groups
(:class:`~memvos_core.memory.MemoryManager`); per object: the hidden state (64 channels);
nothing per frame. Network: :mod:`memvos_core.network.xmem`.
"""
from ..registry import Family, Setting, WeightFile, lazy

_RELEASE = "https://github.com/hkchengrex/XMem/releases/download/v1.0/"
_CODE = "MIT (hkchengrex/XMem)"
_WEIGHTS = ("none stated; trained on DAVIS, YouTube-VOS, static image sets and (s012) BL30K, whose terms "
            "apply")


def _evaluation_config(config, num_frames):
    """XMem's evaluation script counts long-term usage only when pruning can happen (in the
    ``evaluation`` memory mode, the one that script runs)."""
    return config.with_usage_rule(num_frames) if config.memory_mode == "evaluation" else config


def _no_zero(value):
    return ("memory setting deep_update_every=0 is not allowed: use -1 (with memory writes) or a positive "
            "interval") if value == 0 else None


FAMILY = Family(
    name="xmem", title="XMem", marker="key_encoder.",
    recognise=lazy(__name__, ".checkpoint:recognise"), build=lazy(__name__, ".checkpoint:build"),
    model=lazy(__name__, ".model:XMemModel"), synthetic=lazy(__name__, ".checkpoint:synthetic"),
    encode_keys=lazy(__name__, "..base:padded_keys"),  # XMem pads after normalising
    rewrite=lazy(__name__, ".fused:fused_network"), evaluation_config=_evaluation_config,
    own_modules=("memvos_core/network/xmem.py",),
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
