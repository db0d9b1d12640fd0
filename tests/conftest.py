"""What every test shares: generated weights (made once per run), a contained temp folder and
model folder, and the gate for browser tests (tests/test_web_*.py).

Hygiene rules the fixtures below enforce:
* nothing is written outside pytest's temp folders: ``tempfile`` and ``$TMPDIR`` point into
  pytest's base temp for the whole run (subprocesses included), and pytest removes the folders
  of passing tests (``tmp_path_retention_policy = failed`` in pytest.ini);
* the user's model folder (``~/.cache/memvos/models``, ``$MEMVOS_MODELS_DIR``) is never read:
  ``MEMVOS_MODELS_DIR`` points at an empty temp folder;
* generated XMem weights (~240 MB as a file) are written once per run; tests link them
  (``comfy_stand_ins.link_weights``) and copy them only to change them.
"""
import fnmatch
import os
import tempfile
from pathlib import Path

import pytest
import torch

import browser_support

# CI machines have 2 cores: one torch thread per xdist worker (two workers), two in a single process.
# Parity tolerances hold for any thread count; tests that compare two runs bit for bit run both in one
# process (or pass the count on to their subprocess, see test_resume).
torch.set_num_threads(max(1, 2 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "_artifacts"  # git-ignored: screenshots a person may want to look at
BROWSER_TEST_FILES = "test_web_*.py"


# ----------------------------------------------------------------------------- containment

@pytest.fixture(scope="session", autouse=True)
def contained_temp_and_models(tmp_path_factory):
    """System temp and the model folder inside pytest's base temp, for the whole run."""
    system_temp = tmp_path_factory.mktemp("system_temp")
    models = tmp_path_factory.mktemp("user_models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(system_temp))
        for name in ("TMPDIR", "TEMP", "TMP"):
            mp.setenv(name, str(system_temp))
        mp.setenv("MEMVOS_MODELS_DIR", str(models))
        yield {"temp": system_temp, "models": models}


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module (``pytestmark = pytest.mark.usefixtures(...)``):
    its networks are tiny, and a second thread only spins, worse on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- weights

@pytest.fixture(scope="session")
def synthetic_weights():
    from memvos_core.network.synthetic import synthetic_state_dict
    return synthetic_state_dict()


@pytest.fixture(scope="session")
def xmem_net(synthetic_weights):
    from memvos_core.network import load_network
    return load_network(synthetic_weights)


@pytest.fixture(scope="session")
def synthetic_weights_file(tmp_path_factory, synthetic_weights):
    """The generated weights saved once as ``XMem.pth``, shared by every test of the run.

    Never write to it (link it with ``comfy_stand_ins.link_weights``, copy it to change it): the fixture
    checks at the end of the run that it is unchanged."""
    path = tmp_path_factory.mktemp("shared_weights") / "XMem.pth"
    torch.save(synthetic_weights, path)
    path.chmod(0o444)
    before = _stat_key(path)
    yield path
    assert path.is_file() and _stat_key(path) == before, (
        f"a test changed the shared weights file {path}: copy it first (shutil.copyfile) and change the copy")


def _stat_key(path):
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, synthetic_weights_file):
    """ComfyUI's modules stood in for over a temp folder, installed for the test module, with the
    generated weights as models/memvos/XMem.pth (see tests/comfy_stand_ins.py)."""
    from comfy_stand_ins import ComfyStandIns, link_weights
    stand_ins = ComfyStandIns(tmp_path_factory.mktemp("comfyui"))
    link_weights(synthetic_weights_file, os.path.join(stand_ins.dirs["models"], "memvos"))
    with pytest.MonkeyPatch.context() as mp:
        stand_ins.install(mp)
        yield stand_ins


# ----------------------------------------------------------------------------- browser tests

def _is_browser_test(item):
    return fnmatch.fnmatch(item.path.name, BROWSER_TEST_FILES)


def pytest_collection_modifyitems(config, items):
    """Browser tests run where Chromium and playwright are present; elsewhere they are skipped
    with a reason that says how to enable them (unless MEMVOS_REQUIRE_BROWSER=1, as on CI:
    then they run and fail with that reason)."""
    browser_items = [item for item in items if _is_browser_test(item)]
    if not browser_items:
        return
    found = browser_support.find_chromium()
    if found.path is not None or browser_support.browser_required():
        return
    marker = pytest.mark.skip(reason=found.reason)
    for item in browser_items:
        item.add_marker(marker)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by playwright (one per test module: playwright's sync API
    allows one instance at a time)."""
    found = browser_support.find_chromium()
    if found.path is None:
        pytest.fail(found.reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=found.path, args=browser_support.CHROMIUM_ARGS,
                                              headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts_dir():
    """A git-ignored folder for screenshots worth a look after the run (tests/_artifacts/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ----------------------------------------------------------------------------- tracked files

def _tracked_files():
    """``{path: (size, mtime)}`` of the files git tracks here ({} outside a git checkout)."""
    import subprocess
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    if listed.returncode != 0:
        return {}
    stats = {}
    for name in listed.stdout.decode(errors="replace").split("\0"):
        if name:
            try:
                st = os.stat(ROOT / name)
            except OSError:
                continue
            stats[name] = (st.st_size, st.st_mtime_ns)
    return stats


def pytest_sessionstart(session):
    session.config.stash[_TRACKED] = _tracked_files()


def _strict():
    """On CI (CI=true) a rewritten tracked file fails the run; at a desk, where files may be
    edited while the tests run, it is a warning."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("MEMVOS_STRICT_FILES") == "1"


def pytest_sessionfinish(session, exitstatus):
    """A test run must leave every tracked file as it found it (screenshots and other outputs
    go to pytest's temp folders or tests/_artifacts/)."""
    before = session.config.stash.get(_TRACKED, {})
    if not before:
        return
    after = _tracked_files()
    changed = sorted(name for name, stat in before.items() if after.get(name) != stat)
    if changed:
        session.config.stash[_CHANGED] = changed
        if _strict():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    changed = config.stash.get(_CHANGED, [])
    if changed:
        terminalreporter.write_line(
            f"{'FAILED' if _strict() else 'WARNING'}: tracked files changed during the run: {', '.join(changed)} "
            "(tests write to tmp_path or the artifacts_dir fixture; edited by hand meanwhile? then ignore this)",
            red=True)


_TRACKED = pytest.StashKey[dict]()
_CHANGED = pytest.StashKey[list]()
