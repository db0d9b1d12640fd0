from .checkpoint import CheckpointError, detect_family, load_network, read_state_dict
from .features import KeyFeatures

__all__ = ["CheckpointError", "KeyFeatures", "detect_family", "load_network", "read_state_dict"]
