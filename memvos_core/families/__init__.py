"""Model families behind the engine. :mod:`.registry` lists them and states what a family
declares; :mod:`.base` is the per-clip interface the engine calls. A network's family is its
``family`` attribute (the registered id), set by the family's network class."""
from .base import FamilyModel, Plan
from .registry import Family, Setting, WeightFile, families, family_of, get, title_of, titles


def family_model(network, config, device, precision, options):
    """The per-clip family state for ``network``."""
    return family_of(network).model(network, config, device, precision, options)


def check_config(family, config):
    """Raise a clear error for settings the family cannot run with (checked before any work)."""
    get(family).check_config(config)


def evaluation_config(family, config, num_frames):
    """The settings the family's evaluation script would use for a clip of ``num_frames``."""
    return get(family).evaluation_config(config, num_frames)


__all__ = ["Family", "FamilyModel", "Plan", "Setting", "WeightFile", "check_config", "evaluation_config", "families",
           "family_model", "family_of", "get", "title_of", "titles"]
