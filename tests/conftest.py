import pytest
import torch

torch.set_num_threads(2)  # the fixtures were made with 2 threads; CI machines have 2 cores


@pytest.fixture(scope="session")
def synthetic_weights():
    from memvos_core.network.synthetic import synthetic_state_dict
    return synthetic_state_dict()


@pytest.fixture(scope="session")
def xmem_net(synthetic_weights):
    from memvos_core.network import load_network
    return load_network(synthetic_weights)
