import shutil
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)  # the fixtures were made with 2 threads; CI machines have 2 cores

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_HINT = ("install them with: apt-get update && apt-get install -y chromium && "
                "python3 -m pip install playwright   (scripts/test.sh does this)")


@pytest.fixture(scope="session")
def synthetic_weights():
    from memvos_core.network.synthetic import synthetic_state_dict
    return synthetic_state_dict()


@pytest.fixture(scope="session")
def xmem_net(synthetic_weights):
    from memvos_core.network import load_network
    return load_network(synthetic_weights)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by playwright, shared by the browser tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the Python package 'playwright' is missing: {INSTALL_HINT}")
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} (Debian's chromium package) is missing: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
