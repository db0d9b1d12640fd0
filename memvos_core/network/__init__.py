from .checkpoint import CheckpointError, detect_family, load_network, read_state_dict
from .cutie import CutieNetwork
from .features import KeyFeatures
from .xmem import XMemNetwork

__all__ = ["CheckpointError", "CutieNetwork", "KeyFeatures", "XMemNetwork", "detect_family", "load_network",
           "read_state_dict"]
