from .directional import PropagationCancelled
from .keyframes import Keyframe
from .result import DIRECTIONS, PropagationResult, combine
from .session import Session
from .storage import SessionFileError

__all__ = ["DIRECTIONS", "Keyframe", "PropagationCancelled", "PropagationResult", "Session", "SessionFileError", "combine"]
