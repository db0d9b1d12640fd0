"""MatAnyone and MatAnyone 2 (learned alpha mattes, S-Lab License 1.0, non-commercial): the
network (:mod:`.network`), loading and recognising its checkpoints (:mod:`.checkpoint`), and
its inference behind the family interface (:mod:`.model`)."""
from ..registry import Family, WeightFile, lazy

_CODE = "S-Lab License 1.0 (pq-yang/MatAnyone, pq-yang/MatAnyone2): non-commercial use only"
_WEIGHTS = "S-Lab License 1.0: non-commercial use only"
_RELEASE = "https://github.com/pq-yang/MatAnyone/releases/download/v1.0.0/"
_RELEASE2 = "https://github.com/pq-yang/MatAnyone2/releases/download/v1.0.0/"

FAMILY = Family(
    name="matanyone", title="MatAnyone", marker="temp_sparity.",
    recognise=lazy(__name__, ".checkpoint:recognise"), build=lazy(__name__, ".checkpoint:build_matanyone"),
    model=lazy(__name__, ".model:MatAnyoneModel"), synthetic=lazy(__name__, ".synthetic:synthetic"),
    check_config=lazy(__name__, "..cutie.model:check_cutie_config"),
    encode_keys=lazy(__name__, "..cutie.checkpoint:encode_keys"),  # Cutie's encoder and padding
    reads_settings_of=("cutie",),
    keeps="as Cutie (memory per object bucket, sensory state, object memory) plus, per object, the first "
          "keyframe's warmed-up mask and matte; objects are matted independently",
    weights=(
        WeightFile("matanyone.pth", _RELEASE + "matanyone.pth", None,
                   "MatAnyone (CVPR 2025): learned soft alpha mattes (hair, motion blur). S-Lab License 1.0: "
                   "non-commercial use only", _CODE, _WEIGHTS),
        WeightFile("matanyone2.pth", _RELEASE2 + "matanyone2.pth", None,
                   "MatAnyone 2 (CVPR 2026): the same network, newer training. S-Lab License 1.0: "
                   "non-commercial use only", _CODE, _WEIGHTS),
    ),
)
