"""Cutie (base and small): the family's declaration (see ..registry).

Per clip: working and long-term memory per object bucket with permanent prefixes
(:class:`~memvos_core.memory.bucket_manager.BucketMemory`); per object: the sensory state
(256 channels) and the object memory; per frame: the previous output, an input of the next read.
Network: :mod:`memvos_core.network.cutie`. The shared settings under Cutie's own names:
``use_long_term`` = ``enable_long_term``, ``long_term.count_usage`` =
``enable_long_term_count_usage``, ``long_term.min_mem_frames`` / ``max_mem_frames`` =
``min_mid_term_frames`` / ``max_mid_term_frames``, ``long_term.num_prototypes`` =
``num_prototypes``, ``long_term.max_num_tokens`` = ``max_long_term_elements`` (per bucket).
"""
from ..registry import Family, Setting, WeightFile, lazy

_RELEASE = "https://github.com/hkchengrex/Cutie/releases/download/v1.0/"
_CODE = "MIT since February 2024 (hkchengrex/Cutie; GPL-3.0 before)"
_WEIGHTS = ("none stated; trained on DAVIS, YouTube-VOS, MOSE, BURST, OVIS and static image sets, whose "
            "terms apply")


def _all_or_positive(value):
    return (f"memory setting chunk_size={value}: use -1 (all objects at once) or a positive number of objects"
            if value == 0 else None)


FAMILY = Family(
    name="cutie", title="Cutie", marker="pixel_encoder.", variants=("base", "small"),
    recognise=lazy(__name__, ".checkpoint:recognise"), build=lazy(__name__, ".checkpoint:build_cutie"),
    model=lazy(__name__, ".model:CutieModel"), synthetic=lazy(__name__, ".checkpoint:synthetic"),
    check_config=lazy(__name__, ".model:check_cutie_config"),
    encode_keys=lazy(__name__, ".checkpoint:encode_keys"),  # Cutie pads the 0..1 image, then normalises
    own_modules=("memvos_core/network/cutie.py", "memvos_core/network/cutie_blocks.py",
                 "memvos_core/network/cutie_transformer.py", "memvos_core/memory/bucket_manager.py",
                 "memvos_core/memory/bucket_store.py"),
    keeps="per clip: working and long-term memory per object bucket, permanent prefixes; per object: a "
          "256-channel sensory state and the object memory; per frame: the previous output",
    weights=(
        WeightFile("cutie-base-mega.pth", _RELEASE + "cutie-base-mega.pth", None,
                   "Cutie base (ResNet-50), trained with MOSE, BURST and OVIS too: Cutie's default model",
                   _CODE, _WEIGHTS, md5="a6071de6136982e396851903ab4c083a"),
        WeightFile("cutie-small-mega.pth", _RELEASE + "cutie-small-mega.pth", None,
                   "Cutie small (ResNet-18 image encoder), same training data: faster, a little less accurate",
                   _CODE, _WEIGHTS),
    ),
    settings=(
        Setting("stagger_updates", 5, "How many of the mem_every frames after a memory write update the "
                "sensory memory (5 = Cutie's default).", 1, 1000, widget="cutie_stagger_updates"),
        Setting("chunk_size", -1, "Objects read and decoded together; -1 = all (Cutie's default). Smaller "
                "saves GPU memory with many objects but changes results slightly: objects only compete "
                "within a chunk.", -1, 255, check=_all_or_positive, widget="cutie_chunk_size"),
        Setting("max_mem_frames", 5, "With long-term memory off, the frames kept in memory, annotations "
                "included (the oldest others are dropped).", 1, 1000, widget="cutie_max_mem_frames"),
        Setting("buffer_tokens", 2000, "Long-term memory is pruned this many elements below its limit, so "
                "pruning does not happen at every consolidation.", 0, 1_000_000, widget="cutie_buffer_tokens"),
    ),
)
