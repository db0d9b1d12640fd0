"""A loaded network (of any registered family) with where and how it runs: what sessions and nodes pass around."""
import hashlib
import os
from dataclasses import dataclass, field

import torch

from ..families import title_of
from ..families.registry import release_url_of
from ..network import load_network
from ..network.weight_values import check_weight_values
from .precision import PRECISIONS


@dataclass(frozen=True, eq=False)
class MemVOSModel:
    network: torch.nn.Module
    name: str = "model"
    device: str = "cpu"
    precision: str = "fp32"
    model_id: str = field(default="")

    @property
    def family(self):
        """The family id (:mod:`memvos_core.families.registry`): what the checkpoint's keys said it is."""
        return self.network.family

    def to(self, device=None, precision=None):
        device = device or self.device
        precision = precision or self.precision
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.network.to(device)
        return MemVOSModel(self.network, self.name, str(device), precision, self.model_id)

    def describe(self):
        return {"family": self.family, "name": self.name, "model_id": self.model_id,
                **getattr(self.network, "dims", {})}


def weights_fingerprint(network):
    """A short id of the weights, so a saved session is refused by a different model."""
    h = hashlib.sha256()
    for key, tensor in network.state_dict().items():
        flat = tensor.detach().flatten()
        h.update(key.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(flat[:256].to("cpu", torch.float64).numpy().tobytes())
    return h.hexdigest()[:16]


def load_model(source, device="cpu", precision="fp32", name=None):
    """Load a checkpoint (path or state dict) onto ``device``; see :func:`load_network`."""
    network = load_network(source)
    is_path = isinstance(source, (str, os.PathLike))
    check_weight_values(network, name or (os.fspath(source) if is_path else "<state dict>"),
                        release_url_of(source) if is_path else None)
    display = name or (str(source).rsplit("/", 1)[-1] if isinstance(source, str)
                       else title_of(network.family))
    model = MemVOSModel(network, display, "cpu", "fp32", weights_fingerprint(network))
    return model.to(device, precision)
