"""memvos_core: memory-based video object segmentation (XMem / XMem++, Cutie) in plain PyTorch.

Importable and testable without ComfyUI. Every import inside this package is relative, so it
works both as a top-level package and as a subpackage of the ComfyUI node pack.
"""
from .config import MemoryConfig
from .engine import InferenceEngine
from .network import CheckpointError, XMemNetwork, load_network

__all__ = ["CheckpointError", "InferenceEngine", "MemoryConfig", "XMemNetwork", "load_network"]
