"""Memory and inference settings: the ones every family shares, declared here, and each family's
own, declared in its package (:mod:`memvos_core.families.registry`). Together they make
:class:`MemoryConfig`, the single source of the command line's ``--set`` keys, New Session's
widgets and the README's settings table."""
import dataclasses
from dataclasses import fields, make_dataclass

from .families.registry import FORMER_MEMORY_MODES, Setting, family_settings

# keyframes: every keyframe is held in permanent memory before propagating (XMem++'s schedule,
# Cutie's force_permanent). evaluation: the family's own evaluation schedule, annotations enter
# working memory as frames do.
MEMORY_MODES = ("evaluation", "keyframes")


def memory_mode_name(value):
    """The current name of a memory mode, also given by its former name (files from before)."""
    return FORMER_MEMORY_MODES.get(value, value)


def _one_of(choices):
    return lambda value: None if value in choices else (
        f"memory_mode {value!r} is not one of {', '.join(choices)} (former names: {', '.join(FORMER_MEMORY_MODES)})")


# Shared settings, in New Session's order. Defaults are XMem's evaluation defaults; the
# families read them under these names (Cutie's own names in its package's docstring).
SHARED = (
    Setting("memory_mode", "keyframes", "keyframes: every annotation goes into permanent memory (best with "
            "several keyframes). evaluation: the family's evaluation schedule (annotations enter working memory "
            "as frames; each object's first annotation is permanent where the family does that). Former names: "
            "xmem++ = keyframes, xmem = evaluation.",
            check=_one_of(MEMORY_MODES), advanced=False),
    Setting("mem_every", 5, "A frame is written into memory every this many frames.", 1, 1000, advanced=False),
    Setting("top_k", 30, "Memory entries each pixel reads from (top-k).", 1, 1024, advanced=False),
    Setting("enable_long_term", True, "Long-term memory: compresses old frames into prototypes so memory stays "
            "bounded on long shots.", advanced=False),
    Setting("min_mid_term_frames", 5, "Frames kept in working memory after a consolidation into long-term "
            "memory.", 1, 1000),
    Setting("max_mid_term_frames", 10, "Working-memory frames that trigger a consolidation into long-term "
            "memory.", 1, 1000),
    Setting("num_prototypes", 128, "Prototypes made per consolidation.", 1, 4096),
    Setting("max_long_term_elements", 10000, "Long-term memory size limit (per group of objects annotated "
            "together where the family keeps one); the least used elements are dropped beyond it.",
            1, 1_000_000),
    Setting("enable_long_term_count_usage", True, "Count how often long-term elements are read, to drop the "
            "least used first.", widget="long_term_count_usage"),
)


def all_settings():
    """Every setting: the shared ones, then each family's own."""
    return SHARED + tuple(s for _, s in family_settings())


class _Methods:
    """``MemoryConfig``'s behaviour; its fields come from :func:`all_settings`."""

    def __post_init__(self):
        object.__setattr__(self, "memory_mode", memory_mode_name(self.memory_mode))
        for setting in all_settings():
            problem = setting.problem(getattr(self, setting.name))
            if problem:
                raise ValueError(problem)
        if self.enable_long_term and self.min_mid_term_frames >= self.max_mid_term_frames:
            raise ValueError(
                f"min_mid_term_frames ({self.min_mid_term_frames}) must be below max_mid_term_frames "
                f"({self.max_mid_term_frames})")
        if self.enable_long_term and self.num_prototypes >= self.max_long_term_elements:
            raise ValueError("num_prototypes must be below max_long_term_elements")

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


MemoryConfig = make_dataclass(
    "MemoryConfig", [(s.name, s.kind, dataclasses.field(default=s.default)) for s in all_settings()],
    bases=(_Methods,), frozen=True)
MemoryConfig.__module__ = __name__
MemoryConfig.__doc__ = """Every memory setting (:func:`all_settings`); defaults are the families' evaluation
defaults. ``memory_mode`` selects the schedule (see its help)."""


def settings_table():
    """The README's table of memory settings (``tests/test_family_registry.py`` checks it is there)."""
    from .families.registry import family_settings as owned, readers
    owners = {s.name: " and ".join(r.title for r in readers(f)) for f, s in owned()}
    rows = ["| setting (`--set` key) | New Session input | default | read by | what it does |", "|---|---|---|---|---|"]
    for s in all_settings():
        default = str(s.default).lower() if isinstance(s.default, bool) else s.default
        rows.append(f"| `{s.name}` | `{s.input_name}` | `{default}` | {owners.get(s.name, 'every family')} | "
                    f"{s.help} |")
    return "\n".join(rows)


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
