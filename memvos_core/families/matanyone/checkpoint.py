"""Recognising and building MatAnyone / MatAnyone 2 from a checkpoint.

Both releases hold the same 562 keys (Cutie's, minus its stride-4 head, plus the full-resolution
decoder stages, the alpha and segmentation heads and the uncertainty head ``temp_sparity``), so
they are told from Cutie by those keys and from each other only by file name."""
import logging

from ...network.checkpoint import CheckpointError, strict_load
from ..cutie.checkpoint import PREFIXES as CUTIE_PREFIXES, adapt_cutie_state, infer_cutie_dims
from .network import MatAnyoneNetwork

log = logging.getLogger(__name__)

# Keys only a MatAnyone checkpoint has: the uncertainty head and the alpha head.
MARKER_PREFIXES = ("temp_sparity.", "mask_decoder.pred_mat.")
# Single-object inputs, widened on loading by a zero "others" channel as Cutie's loader does for
# single-object Cutie files (see network.py).
_SINGLE_OBJECT = ("mask_encoder.conv1.weight", "pixel_fuser.sensory_compress.weight")
LICENCE = ("MatAnyone and MatAnyone 2 weights are under the S-Lab License 1.0: non-commercial use "
           "only (https://github.com/pq-yang/MatAnyone/blob/main/LICENSE)")
ADVICE = ("Use an official MatAnyone checkpoint (matanyone.pth, matanyone2.pth) unchanged, or one "
          "trained with MatAnyone's code")


def recognise(state):
    """How specifically ``state`` is a MatAnyone checkpoint: 2 with Cutie's module names and
    MatAnyone's own heads (above Cutie's claim of 1 on the same modules), else 0."""
    cutie = any(k.startswith(CUTIE_PREFIXES) for k in state)
    return 2 if cutie and any(k.startswith(MARKER_PREFIXES) for k in state) else 0


def infer_matanyone_dims(state, source="<memory>"):
    missing = [k for k in ("mask_decoder.pred_mat.weight", "temp_sparity.conv1x1_v2.weight") if k not in state]
    if missing:
        raise CheckpointError(f"weights file {source!r} is not a complete MatAnyone checkpoint (missing "
                              f"{', '.join(missing)}). {ADVICE}")
    dims = infer_cutie_dims(state, source, "MatAnyone", ADVICE)
    if dims["variant"] != "base":
        raise CheckpointError(f"weights file {source!r} has a ResNet-18 pixel encoder; MatAnyone's is a "
                              f"ResNet-50. {ADVICE}")
    return {k: dims[k] for k in ("key_dim", "value_dim", "sensory_dim", "pixel_dim", "embed_dim", "num_queries",
                                 "num_blocks", "ff_dim")}


def build_matanyone(state, name):
    try:
        model = MatAnyoneNetwork(**infer_matanyone_dims(state, name))
    except (TypeError, RuntimeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"weights file {name!r} has MatAnyone keys with impossible shapes "
                              f"({exc}). {ADVICE}") from None
    model = strict_load(model, adapt_cutie_state(state, model), name, "the MatAnyone network", ADVICE)
    log.warning("loaded %s: %s", name, LICENCE)
    return model
