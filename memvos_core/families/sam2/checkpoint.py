"""SAM 2.1 checkpoints: Meta's ``.pt`` release files (a ``model`` entry holding the state
dict, read with ``weights_only=True``) or the same tensors as safetensors. The size (tiny,
small, base+, large) is recognised from the trunk's width and depth; every key and shape must
then match that size exactly."""
import re

from ...network.checkpoint import CheckpointError, read_state_dict, strict_load, unwrap_state_dict
from . import IMAGE_SIZE, image_size_problem
from .network import SIZES, Sam2Network

PREFIXES = ("image_encoder.trunk.", "sam_mask_decoder.", "memory_attention.", "memory_encoder.")
_WIDTH_KEY = "image_encoder.trunk.patch_embed.proj.weight"
ADVICE = ("Use one of Meta's SAM 2.1 checkpoints (sam2.1_hiera_tiny.pt, sam2.1_hiera_small.pt, "
          "sam2.1_hiera_base_plus.pt, sam2.1_hiera_large.pt)")
_BY_SHAPE = {(s.embed_dim, sum(s.stages)): name for name, s in SIZES.items()}


def is_sam2_state(state):
    return any(k.startswith("image_encoder.trunk.") for k in state) and any(
        k.startswith("sam_mask_decoder.") for k in state)


def detect_size(state, source="<memory>"):
    """``"tiny"``, ``"small"``, ``"base_plus"`` or ``"large"``, from the trunk's first width and
    its number of blocks (the released configs differ in both)."""
    if _WIDTH_KEY not in state or not is_sam2_state(state):
        raise CheckpointError(f"weights file {source!r} is not a SAM 2 checkpoint (no {_WIDTH_KEY}). {ADVICE}")
    width = int(state[_WIDTH_KEY].shape[0])
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    depth = max(blocks) + 1 if blocks else 0
    size = _BY_SHAPE.get((width, depth))
    if size is None:
        known = ", ".join(f"{n} ({s.embed_dim} wide, {sum(s.stages)} blocks)" for n, s in SIZES.items())
        raise CheckpointError(
            f"weights file {source!r} has a SAM 2 trunk {width} wide with {depth} blocks, none of the released "
            f"sizes ({known}). {ADVICE}")
    return size


def build_sam2(state, name="<state dict>", image_size=IMAGE_SIZE):
    """The network a SAM 2.1 state dict describes, loaded strictly (eval mode, CPU, fp32)."""
    problem = image_size_problem(image_size)
    if problem:
        raise ValueError(problem)
    model = Sam2Network(detect_size(state, name), image_size)
    return strict_load(model, state, name, f"SAM 2.1 hiera {model.size}", ADVICE)


def load_sam2(source, *, image_size=IMAGE_SIZE, source_name=None):
    """Read a SAM 2.1 checkpoint (path or state dict / ``{"model": state}``) and build it."""
    if isinstance(source, dict):
        name = source_name or "<state dict>"
        state = unwrap_state_dict(source, name)
    else:
        name = str(source)
        state = read_state_dict(source)
    return build_sam2(state, name, image_size)


def recognise(state):
    """The registry's claim: 1 when the keys are SAM 2's (its trunk and its mask decoder)."""
    return 1 if is_sam2_state(state) else 0


def encode_keys(network, images):
    return network.encode_key(images, True, True)


def synthetic(variant=None):
    """``(specs, rule)`` of the default (tiny) network for tests and benchmarks: the keys with
    shapes, and the weight rule of the parity fixtures (mask-feature gain 4, first mask bias 20)."""
    import torch
    from ...network.synthetic import WeightRule
    with torch.device("meta"):
        state = Sam2Network(variant or "tiny").state_dict()
    specs = [(k, tuple(v.shape), v.dtype) for k, v in state.items()]
    rule = WeightRule(mask_input_key="", mask_input_gain=1.0,
                      gains={"memory_encoder.mask_downsampler.encoder.12.weight": 4.0,
                             "memory_encoder.mask_downsampler.encoder.0.bias": 20.0})
    return specs, rule
