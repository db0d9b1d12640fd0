"""Model families behind the engine: XMem (and XMem++) and Cutie. See :mod:`.base` for the
interface; the family of a network is its ``family`` attribute, set by the checkpoint loader."""
from .base import FamilyModel, Plan

FAMILIES = ("xmem", "cutie", "matanyone")
FAMILY_NAMES = {"xmem": "XMem", "cutie": "Cutie", "matanyone": "MatAnyone"}


def family_of(network):
    return getattr(network, "family", "xmem")


def family_model(network, config, device, precision, options):
    """The per-clip family state for ``network``."""
    family = family_of(network)
    if family == "cutie":
        from .cutie import CutieModel
        return CutieModel(network, config, device, precision, options)
    if family == "matanyone":
        from .matanyone.model import MatAnyoneModel
        return MatAnyoneModel(network, config, device, precision, options)
    if family == "xmem":
        from .xmem import XMemModel
        return XMemModel(network, config, device, precision, options)
    raise ValueError(f"model family {family!r} is not one of {', '.join(FAMILIES)}")


def check_config(family, config):
    """Raise a clear error for settings the family cannot run with (checked before any work)."""
    if family in ("cutie", "matanyone"):
        from .cutie import check_cutie_config
        check_cutie_config(config)


def evaluation_config(family, config, num_frames):
    """The settings the family's evaluation script would use for a clip of ``num_frames``:
    XMem (in ``xmem`` mode) counts long-term usage only when pruning can happen; Cutie always
    counts it."""
    if family == "xmem" and config.memory_mode == "xmem":
        return config.with_usage_rule(num_frames)
    return config


__all__ = ["FAMILIES", "FAMILY_NAMES", "FamilyModel", "Plan", "check_config", "evaluation_config", "family_model",
           "family_of"]
