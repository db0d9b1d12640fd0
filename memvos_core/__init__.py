"""memvos_core: memory-based video object segmentation (XMem / XMem++, Cutie, ...: see
memvos_core.families) in plain PyTorch.

Importable and testable without ComfyUI. Every import inside this package is relative, so it
works both as a top-level package and as a subpackage of the ComfyUI node pack.
"""
from .config import MemoryConfig
from .runtime.engine import InferenceEngine
from .network import CheckpointError, load_network

__all__ = ["CheckpointError", "InferenceEngine", "MemoryConfig", "load_network"]
