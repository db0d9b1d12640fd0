from .blend import combine
from .directional import PropagationCancelled
from .keyframes import Keyframe
from .propagation import Checkpoint, CheckpointMismatch, Propagation
from .result import DIRECTIONS, PropagationResult
from .session import Session
from .storage import SessionFileError
from .store import ResultStore, StoredFrame, StoreError

__all__ = ["DIRECTIONS", "Checkpoint", "CheckpointMismatch", "Keyframe", "Propagation", "PropagationCancelled",
           "PropagationResult", "ResultStore", "Session", "SessionFileError", "StoreError", "StoredFrame", "combine"]
