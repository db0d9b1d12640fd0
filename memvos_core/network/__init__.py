from .checkpoint import CheckpointError, load_network, read_state_dict
from .features import KeyFeatures
from .xmem import XMemNetwork

__all__ = ["CheckpointError", "KeyFeatures", "XMemNetwork", "load_network", "read_state_dict"]
