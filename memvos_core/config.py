"""Memory and inference settings, under XMem's own config names (spec §4.1)."""
import dataclasses
from dataclasses import dataclass, fields

MEMORY_MODES = ("xmem", "xmem++")


@dataclass(frozen=True)
class MemoryConfig:
    """Every setting of XMem's memory; defaults are XMem's evaluation defaults.

    ``memory_mode`` selects the schedule: ``"xmem"`` keeps the first memory frame in working
    memory forever and lets annotations enter working memory as XMem does; ``"xmem++"`` puts
    every annotation into permanent memory (XMem++) and consolidates all of working memory.
    For Cutie, ``"xmem"`` is its evaluation schedule (each object's first annotated frame is
    permanent) and ``"xmem++"`` commits every keyframe to permanent memory first
    (``force_permanent``, as Cutie's ``process_video.py`` does).

    The settings shared by both families keep XMem's names; Cutie's equivalents:
    ``use_long_term`` = ``enable_long_term``, ``long_term.count_usage`` =
    ``enable_long_term_count_usage``, ``long_term.min_mem_frames`` / ``max_mem_frames`` =
    ``min_mid_term_frames`` / ``max_mid_term_frames``, ``long_term.num_prototypes`` =
    ``num_prototypes``, ``long_term.max_num_tokens`` = ``max_long_term_elements`` (per object
    bucket in Cutie). ``deep_update_every`` is XMem's only; the last four fields Cutie's only.
    """

    top_k: int = 30
    mem_every: int = 5
    deep_update_every: int = -1
    enable_long_term: bool = True
    enable_long_term_count_usage: bool = True
    min_mid_term_frames: int = 5
    max_mid_term_frames: int = 10
    num_prototypes: int = 128
    max_long_term_elements: int = 10000
    memory_mode: str = "xmem++"
    # Cutie only (XMem ignores them), under Cutie's own names:
    stagger_updates: int = 5   # sensory updates by the decoder per mem_every frames
    chunk_size: int = -1       # objects read and decoded together; -1 = all (changes results)
    buffer_tokens: int = 2000  # long-term pruning goes this far below the limit (hysteresis)
    max_mem_frames: int = 5    # without long-term memory: frames kept, permanent one included

    def __post_init__(self):
        positive = ("top_k", "mem_every", "min_mid_term_frames", "max_mid_term_frames",
                    "num_prototypes", "max_long_term_elements")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"memory setting {name}={getattr(self, name)} must be at least 1")
        if self.deep_update_every == 0:
            raise ValueError("memory setting deep_update_every=0 is not allowed: use -1 (with memory writes) or a positive interval")
        if self.enable_long_term and self.min_mid_term_frames >= self.max_mid_term_frames:
            raise ValueError(
                f"min_mid_term_frames ({self.min_mid_term_frames}) must be below max_mid_term_frames "
                f"({self.max_mid_term_frames})")
        if self.enable_long_term and self.num_prototypes >= self.max_long_term_elements:
            raise ValueError("num_prototypes must be below max_long_term_elements")
        for name in ("stagger_updates", "max_mem_frames"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"memory setting {name}={getattr(self, name)} must be at least 1")
        if self.chunk_size == 0 or self.chunk_size < -1:
            raise ValueError(f"memory setting chunk_size={self.chunk_size}: use -1 (all objects at once) "
                             "or a positive number of objects")
        if self.buffer_tokens < 0:
            raise ValueError(f"memory setting buffer_tokens={self.buffer_tokens} must not be negative")
        if self.memory_mode not in MEMORY_MODES:
            raise ValueError(f"memory_mode {self.memory_mode!r} is not one of {', '.join(MEMORY_MODES)}")

    @classmethod
    def names(cls):
        return [f.name for f in fields(cls)]

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"unknown memory setting(s) {', '.join(unknown)}; known: {', '.join(cls.names())}")
        return cls(**values)

    def with_usage_rule(self, num_frames):
        """XMem's per-video rule: count long-term usage only when pruning can happen (spec §4.1)."""
        span = self.max_mid_term_frames - self.min_mid_term_frames
        needed = num_frames / span * self.num_prototypes >= self.max_long_term_elements
        return self.replace(enable_long_term_count_usage=bool(needed))


def parse_setting(config, text):
    """Apply ``key=value`` (CLI ``--set``) to a config, converting to the field's type."""
    if "=" not in text:
        raise ValueError(f"--set {text!r}: expected key=value, e.g. --set mem_every=5")
    key, value = (s.strip() for s in text.split("=", 1))
    types = {f.name: f.type for f in fields(MemoryConfig)}
    if key not in types:
        raise ValueError(f"--set {key}: unknown memory setting; known: {', '.join(MemoryConfig.names())}")
    kind = types[key]
    try:
        if kind in (bool, "bool"):
            low = value.lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError
            parsed = low in ("1", "true", "yes", "on")
        elif kind in (int, "int"):
            parsed = int(value)
        else:
            parsed = value
    except ValueError:
        raise ValueError(f"--set {key}={value}: not a valid {getattr(kind, '__name__', kind)}") from None
    return config.replace(**{key: parsed})
