"""A test-only model family, declared in this one package as memvos_core/families/registry.py
asks: it proves a family plugs in through the registry alone (session, command line, nodes).

The toy "network" has one weight and carries the last memory frame's probabilities forward
unchanged: simple enough to predict, honest enough to run every step of the engine."""
import torch
import torch.nn.functional as F

from memvos_core.families import Family, FamilyModel, Plan, WeightFile
from memvos_core.families.base import padded_keys
from memvos_core.runtime.frames import pad
from memvos_core.network.checkpoint import strict_load
from memvos_core.network.features import KeyFeatures
from memvos_core.network.synthetic import WeightRule

NAME = "toy"
KEY = "toy_encoder.weight"


class ToyNetwork(torch.nn.Module):
    family = NAME
    stride = 16

    def __init__(self):
        super().__init__()
        self.toy_encoder = torch.nn.Conv2d(3, 2, 1, bias=False)
        self.dims = {"key_dim": 2}

    def encode_key(self, image, need_shrinkage=True, need_selection=True):
        key = F.avg_pool2d(self.toy_encoder(image), 16)
        return KeyFeatures(key, torch.ones_like(key[:, :1]), torch.sigmoid(key), ())


class ToyModel(FamilyModel):
    family = NAME

    def __init__(self, network, config, device, precision, options):
        super().__init__(network, config, device, precision, options)
        self.last = None

    def pad(self, image):
        return pad(image)

    def plan(self, engine, mask_given, valid_labels, end):
        return Plan(not end, not mask_given, False, False)

    def encode(self, image, plan):
        return self.network.encode_key(image)

    def read(self, feats):
        return self.last

    def decode(self, feats, readout, plan):
        return readout

    def write(self, engine, work, write_memory, write_permanent):
        self.last = work.prob

    def add_permanent(self, engine, image, mask, slot=None):
        padded, _ = pad(mask.to(self.device).float())
        self.last = torch.cat([(1 - padded.sum(0, keepdim=True)).clamp(0, 1), padded])

    @property
    def has_memory(self):
        return self.last is not None

    def state(self):
        return ({} if self.last is None else {"last": self.last}), {}

    def load_state(self, tensors, meta):
        self.last = tensors.get("last")


def _build(state, source):
    return strict_load(ToyNetwork(), state, source, "the toy network", "use a toy checkpoint")


FAMILY = Family(
    name=NAME, title="Toy", recognise=lambda state: int(KEY in state), marker="toy_encoder.", build=_build,
    model=ToyModel, encode_keys=padded_keys, keeps="per clip: the last memory frame; nothing per object",
    synthetic=lambda variant: ([(KEY, (2, 3, 1, 1), torch.float32)], WeightRule(KEY, 1.0, {})),
    weights=(WeightFile("toy.safetensors", "http://127.0.0.1:9/toy.safetensors", None, "the toy family",
                        "test-only", "test-only"),),
)
