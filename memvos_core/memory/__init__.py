from .manager import MemoryManager
from .store import MemoryStore

__all__ = ["MemoryManager", "MemoryStore"]
