"""SAM 2.1 (Meta, Apache-2.0 code and weights): the third model family.

Modules: :mod:`.network` (the whole network, checkpoint names) built from :mod:`.hiera`
(image encoder), :mod:`.heads` (prompt encoder, mask decoder), :mod:`.memory_net` (memory
attention, memory encoder), :mod:`.layers`; :mod:`.checkpoint` (reading Meta's ``.pt``
files, the four sizes); :mod:`.image` (the click tool's image path); :mod:`.video` (tracking
as Meta's video predictor does it); :mod:`.model` (the engine's family interface).

``FAMILY`` is this family's declaration for the family registry
(``memvos_core/families/registry.py``). This module imports nothing heavy.
"""
# Meta's release folder (the URLs of sam2's checkpoints/download_ckpts.sh)
RELEASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_LICENCE = "Apache-2.0 (facebookresearch/sam2)"
WEIGHT_FILES = (
    ("sam2.1_hiera_tiny.pt", "SAM 2.1 hiera tiny (39 M parameters): the fastest SAM 2.1"),
    ("sam2.1_hiera_small.pt", "SAM 2.1 hiera small (46 M)"),
    ("sam2.1_hiera_base_plus.pt", "SAM 2.1 hiera base+ (81 M)"),
    ("sam2.1_hiera_large.pt", "SAM 2.1 hiera large (224 M): the most accurate SAM 2.1, the slowest"),
)
KEEPS = ("per object: every keyframe as a conditioning frame (memory, pointer), the last 15 tracked "
         "frames' memory and pointers; nothing per clip")

from ..registry import Family, PromptPath, Setting, WeightFile, lazy

IMAGE_SIZE = 1024   # as released
IMAGE_SIZE_RANGE = (64, 4096)


def image_size_problem(value):
    """Why SAM 2.1 cannot run at square input ``value``, or None (the image encoder's stride is 16)."""
    low, high = IMAGE_SIZE_RANGE
    if not low <= value <= high or value % 16:
        return (f"memory setting image_size={value} must be a multiple of 16 from {low} to {high} "
                f"(SAM 2.1 as released: {IMAGE_SIZE})")
    return None


FAMILY = Family(
    name="sam2", title="SAM 2.1", marker="image_encoder.trunk.",
    recognise=lazy(__name__, ".checkpoint:recognise"), build=lazy(__name__, ".checkpoint:build_sam2"),
    model=lazy(__name__, ".model:Sam2Model"), synthetic=lazy(__name__, ".checkpoint:synthetic"),
    encode_keys=lazy(__name__, ".checkpoint:encode_keys"),
    keeps=KEEPS,
    prompts=PromptPath(embed=lazy(__name__, ".image:embed_frame"), predict=lazy(__name__, ".image:predict"),
                       bytes_of=lazy(__name__, ".image:embedding_bytes")),
    weights=tuple(WeightFile(name, RELEASE + name, None, what, _LICENCE, _LICENCE) for name, what in WEIGHT_FILES),
    settings=(
        Setting("image_size", IMAGE_SIZE, "SAM 2.1 resizes every frame to this square size (a multiple of 16; "
                "1024 as released): smaller is faster and lighter, larger sees finer detail.",
                *IMAGE_SIZE_RANGE, check=image_size_problem, widget="sam2_image_size", step=16),
    ),
)
