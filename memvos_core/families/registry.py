"""The model families the engine knows, and the contract a family fulfils to be one of them.

Adding a family
===============
A family is one package ``memvos_core/families/<name>/`` plus its name in :data:`PACKAGES`
below (the one line outside the package). Nothing else in the project names a family: the
session, memory schedule, ops, nodes, command line, batch and benchmarks ask this registry
(``tests/test_family_registry.py`` enforces it). The package's ``__init__.py`` defines
``FAMILY = Family(...)`` and must stay light: it is imported when the settings class is built,
so it imports only this module and the standard library at module level; its callables import
the family's heavy modules (network, model) when they are called (:func:`lazy` makes them).

What a :class:`Family` declares, in one place:

``name``, ``title``
    The id stored in session files and checkpoints (lowercase, never changed once released)
    and the name shown to artists.
``recognise(state) -> int``
    How specifically a checkpoint's keys (a flat ``name -> tensor`` dict, ``module.`` prefixes
    and training wrappers already removed) are this family's: 0 = not ours, 1 = the family's
    module names are there, more when a family built on another's modules also finds keys of its
    own (so it wins over the family it builds on). The highest claim loads the file; two equal
    best claims refuse it as a mix. ``marker`` names a key prefix for that message.
``build(state, source) -> torch.nn.Module``
    The network the file describes (dimensions read from tensor shapes), loaded strictly with
    :func:`memvos_core.network.checkpoint.strict_load`; errors are
    :class:`~memvos_core.network.checkpoint.CheckpointError` naming ``source`` and the fix. The
    network has a ``family`` attribute equal to ``name``, a ``dims`` dict and ``encode_key``.
``weights``
    The known weight files (:class:`WeightFile`: name, URL, checksums where known, licences of
    the code and of the weights). ``weights.py`` downloads and verifies them by name.
``settings``
    The family's own settings (:class:`Setting`: name, default, range, one-line help). With the
    shared ones of :mod:`memvos_core.config` they make ``MemoryConfig``, the single source of the
    command line's ``--set`` keys, New Session's widgets and the README table. A setting's name
    is unique across families.
``model(network, config, device, precision, options) -> FamilyModel``
    The per-clip state behind the engine (:mod:`.base`): what the family keeps per clip (memory),
    per object (sensory state, ...) and per frame, and how it plans, reads, decodes and writes.
    ``keeps`` says it in one line for the README.
``check_config(config)``, ``evaluation_config(config, num_frames)``
    Settings the family cannot run with (one clear ``ValueError``), and the per-clip rules of
    the family's own evaluation script (applied by the command line unless the user set them).
``rewrite(network, device)``
    The engine rewrite for CPU inference (a fused network with the same results), or None.
``encode_keys(network, images) -> KeyFeatures``
    Key, shrinkage and selection of a batch of normalised ``[B,3,H,W]`` images at the network's
    size (Suggest Frames compares frames through them); padding is the family's own.
``prompts`` (optional)
    The family's image path for click to mask (:class:`PromptPath`): clicks and boxes on one
    frame give an object's mask, whichever family propagates. :func:`prompt_families` lists the
    families that have one; their known weights serve the clicks, in their declared order.
``reads_settings_of``
    Other families whose settings this one reads too (it runs on their model code).
``synthetic(variant) -> (specs, rule)``, ``variants``
    For tests and benchmarks without trained weights: the ``(key, shape, dtype)`` specs of the
    network of that variant and the :class:`~memvos_core.network.synthetic.WeightRule` that makes
    random weights behave; ``variants`` lists the variant names, the default first (``(None,)``
    for a family with one network).

Saved state: a family's model stores its per-clip state through ``FamilyModel.state()`` /
``load_state()`` inside session files and checkpoints, tagged with ``name``; a file is refused
by another family. A family that reuses another's network modules (MatAnyone on Cutie's)
imports them from ``memvos_core.network`` or the other family's package. Only a family's own
modules may name it: its package and the ``own_modules`` it lists (its network and memory
modules elsewhere).

Tests may register a family for their run with :func:`register` (a toy family does that); it
may add no settings, since the settings class is built once at import.
"""
import importlib
import os
from dataclasses import dataclass, field, replace
from typing import Callable

# The one line a new family adds: the name of its package under memvos_core/families/.
PACKAGES = ("xmem", "cutie", "sam2", "matanyone")
# Session files and checkpoints written before a second family existed do not record theirs.
FAMILY_OF_UNMARKED_FILES = "xmem"
# Memory schedules were named after XMem before the registry; saved sessions, checkpoints,
# workflows and shot files still carry these names, read as the new ones.
FORMER_MEMORY_MODES = {"xmem++": "keyframes", "xmem": "evaluation"}


@dataclass(frozen=True)
class Setting:
    """One memory setting: a field of ``MemoryConfig``, a ``--set`` key and a New Session widget."""

    name: str
    default: object
    help: str
    low: int | None = None           # inclusive range of an int setting (None: unbounded)
    high: int | None = None
    check: Callable | None = None    # value -> error text or None, for rules a range cannot say
    step: int = 1                    # New Session's widget step of an int setting
    widget: str | None = None        # New Session's input name, if not ``name`` (kept for old workflows)
    widget_after: str | None = None  # New Session input it follows; None: with the optional inputs
    advanced: bool = True

    @property
    def kind(self):
        return type(self.default)

    @property
    def input_name(self):
        return self.widget or self.name

    def problem(self, value):
        """Why ``value`` is refused, or None."""
        if self.low is not None and value < self.low:
            return f"memory setting {self.name}={value} must be at least {self.low}"
        if self.high is not None and value > self.high:
            return f"memory setting {self.name}={value} must be at most {self.high}"
        return self.check(value) if self.check is not None else None


@dataclass(frozen=True)
class WeightFile:
    """A released checkpoint that can be fetched by its file name."""

    name: str
    url: str
    # The official file's sha256 (64 hex digits). None until someone records it from a trusted
    # download; until then a download is verified by a strict load.
    sha256: str | None
    description: str
    code_licence: str = ""
    weights_licence: str = ""
    # An md5 the official project publishes: checked as well; being weaker than a sha256, it
    # does not replace the strict load.
    md5: str | None = None
    family: str = ""


@dataclass(frozen=True)
class PromptPath:
    """A family's image path: ``embed(network, rgb)`` once per frame (an embedding with
    ``frame_hw`` that the caller may keep), then ``predict(network, embedding, points, labels, box,
    multimask=...)`` per prompt set -> ``(mask logits [M,H,W], predicted IoUs [M], low-res logits)``."""

    embed: Callable
    predict: Callable
    bytes_of: Callable  # embedding -> bytes it holds (for the embeddings' cache bound)


def _never(*args):
    return None


def _same_config(config, num_frames=None):
    return config


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    recognise: Callable
    marker: str
    build: Callable
    model: Callable
    encode_keys: Callable
    synthetic: Callable
    keeps: str
    weights: tuple = ()
    settings: tuple = ()
    check_config: Callable = _never
    evaluation_config: Callable = _same_config
    rewrite: Callable | None = None
    variants: tuple = field(default=(None,))  # synthetic() variants, the default first
    # Modules outside the package that are the family's own (network, memory), as paths from the
    # repository root: like the package, they may name the family.
    own_modules: tuple = ()
    prompts: PromptPath | None = None  # click to mask (see the module doc)
    # Families whose settings this one reads too (a family built on another's model: MatAnyone on Cutie).
    reads_settings_of: tuple = ()

    def __post_init__(self):
        # Each file knows its family (the weights command reports it); declared once, here.
        object.__setattr__(self, "weights", tuple(replace(w, family=self.name) for w in self.weights))


def lazy(package, target):
    """A callable that imports ``".module:attribute"`` (relative to ``package``) when first
    called: how a family's light ``__init__`` names its heavy functions."""
    module, attribute = target.split(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module, package), attribute)(*args, **kwargs)
    call.__qualname__ = f"lazy({package}{target})"
    return call


_FAMILIES = {}


def _load():
    if not _FAMILIES:
        for package in PACKAGES:
            family = importlib.import_module(f"{__package__}.{package}").FAMILY
            _FAMILIES[family.name] = family
    return _FAMILIES


def families():
    """Every registered family, in registration order."""
    return tuple(_load().values())


def register(family):
    """Add a family for this process (tests); its settings must be empty (see the module doc)."""
    if family.settings:
        raise ValueError(f"family {family.name!r}: settings need a package in PACKAGES (the settings class "
                         "is built at import)")
    _load()[family.name] = family


def unregister(name):
    _load().pop(name, None)


def get(name):
    known = _load()
    if name not in known:
        raise ValueError(f"model family {name!r} is not one of {', '.join(known)}")
    return known[name]


def family_of(network):
    """The :class:`Family` of a built network."""
    return get(network.family)


def title_of(name):
    """The artist-facing name of a family id (the id itself when unknown)."""
    known = _load()
    return known[name].title if name in known else name


def titles():
    """``"XMem or Cutie"``: every family's name, for help texts."""
    names = [f.title for f in families()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def family_settings():
    """``(family, setting)`` for every family's own settings."""
    return [(f, s) for f in families() for s in f.settings]


def readers(owner):
    """The families that read ``owner``'s settings: itself and those built on it."""
    return tuple(f for f in families() if f.name == owner.name or owner.name in f.reads_settings_of)


def prompt_families():
    """The families with an image path for click to mask (:class:`PromptPath`)."""
    return tuple(f for f in families() if f.prompts is not None)


def known_weights():
    """Every family's known weight files, by file name."""
    return {w.name: w for f in families() for w in f.weights}


def release_url_of(path):
    """The release URL of a known weights file at ``path`` (by its name, or the name its converted
    ``.safetensors`` copy was made from), or None for any other file (fine-tuned, renamed)."""
    name = os.path.basename(os.fspath(path))
    stem, ext = os.path.splitext(name)
    for known in known_weights().values():
        if known.name == name or (ext in (".safetensors", ".sft") and os.path.splitext(known.name)[0] == stem):
            return known.url
    return None


def load_network(source, *, source_name=None):
    """Build the network a checkpoint (path or state dict) describes, of the family its keys
    belong to (:func:`recognise`), strictly; eval mode, CPU, fp32."""
    from ..network.checkpoint import read_state_dict, unwrap_state_dict
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        state = read_state_dict(source, release_url=release_url_of(source))
    else:
        name = source_name or "<state dict>"
        state = unwrap_state_dict(source, name)
    return recognise(state, name).build(state, name)


def detect_family(state, source="<memory>"):
    """The family id (``network.family``) of a checkpoint's keys."""
    return recognise(state, source).name


def recognise(state, source):
    """The family whose checkpoint ``state`` is, or a :class:`CheckpointError` saying why none."""
    from ..network.checkpoint import CheckpointError
    claims = [(f.recognise(state), f) for f in families()]
    best = max(score for score, _ in claims)
    winners = [f for score, f in claims if score == best and score > 0]
    files = ", ".join(w.name for w in known_weights().values())
    if not winners:
        markers = " or ".join(f.marker for f in families())
        raise CheckpointError(
            f"weights file {source!r} is not a checkpoint of any known model family ({titles()}): none of its "
            f"keys starts with {markers}; pick one of {files}")
    if len(winners) > 1:
        mix = " and ".join(f"{f.title} keys ({f.marker}*)" for f in winners)
        raise CheckpointError(f"weights file {source!r} mixes {mix}: it is no official checkpoint; use one of {files}")
    return winners[0]
