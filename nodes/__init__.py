"""The pack's ComfyUI nodes (classic V1 classes), one module per topic.

The mappings are built on first access, not at import: the pack's root ``__init__.py`` asks for
them (``from .nodes import NODE_CLASS_MAPPINGS``), while tools that only want a helper module
(``nodes.comfy_env``, ``nodes.preview``) can import it without loading every node.
"""

_EXPORTS = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS")


def __getattr__(name):
    if name in _EXPORTS:
        from . import registry
        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
