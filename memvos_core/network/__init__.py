from ..families.registry import detect_family, load_network
from .checkpoint import CheckpointError, read_state_dict
from .features import KeyFeatures

__all__ = ["CheckpointError", "KeyFeatures", "detect_family", "load_network", "read_state_dict"]
