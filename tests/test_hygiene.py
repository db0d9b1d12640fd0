"""The test suite's own manners: temp files, the user's model folder, shared weights, browser skips."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import browser_support
from comfy_stand_ins import link_weights

ROOT = Path(__file__).resolve().parents[1]


def _inside(path, folder):
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def test_system_temp_is_inside_pytests_temp(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    assert _inside(tempfile.gettempdir(), base)
    assert _inside(os.environ["TMPDIR"], base)
    with tempfile.NamedTemporaryFile() as handle:
        assert _inside(handle.name, base)


def test_previews_outside_comfyui_go_to_the_contained_temp(tmp_path_factory, monkeypatch):
    from pack_loader import pack_for_tests
    comfy_env = pack_for_tests().nodes.comfy_env
    monkeypatch.setitem(sys.modules, "folder_paths", None)  # as outside ComfyUI
    assert _inside(comfy_env.temp_directory(), tmp_path_factory.getbasetemp())


def test_the_users_model_folder_is_never_used(tmp_path_factory):
    from memvos_core.weights import default_models_dir
    models = default_models_dir()
    assert _inside(models, tmp_path_factory.getbasetemp())
    assert not _inside(models, Path.home() / ".cache")
    assert os.listdir(models) == []


def test_shared_weights_are_linked_not_copied(synthetic_weights_file, tmp_path):
    linked = link_weights(synthetic_weights_file, tmp_path / "models" / "memvos")
    assert os.path.samefile(linked, synthetic_weights_file)
    assert link_weights(synthetic_weights_file, tmp_path / "models" / "memvos") == linked


# ----------------------------------------------------------------------------- browser gate

def test_chromium_can_be_turned_off_and_the_reason_says_how_to_enable_it(monkeypatch):
    monkeypatch.setenv(browser_support.CHROMIUM_ENV, "none")
    found = browser_support.find_chromium()
    if "playwright is not installed" in found.reason:
        pytest.skip("playwright is not installed here")
    assert found.path is None
    assert "MEMVOS_CHROMIUM='none'" in found.reason and "apt-get install -y chromium" in found.reason


def test_a_chromium_path_that_is_not_there_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(browser_support.CHROMIUM_ENV, str(tmp_path / "no-chromium"))
    found = browser_support.find_chromium()
    assert found.path is None and "is not an executable file" in found.reason or "playwright" in found.reason


def test_chromium_missing_from_path_is_a_skip_reason(monkeypatch, tmp_path):
    monkeypatch.delenv(browser_support.CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = browser_support.find_chromium()
    assert found.path is None
    assert "Chromium was not found" in found.reason or "playwright" in found.reason
    assert "apt-get install -y chromium" in found.reason


def test_missing_playwright_is_a_reason_too(monkeypatch):
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # import fails
    found = browser_support.find_chromium()
    assert found.path is None and "pip install -r requirements-test.txt" in found.reason


def _run_player_tests(env_changes):
    env = dict(os.environ, **env_changes)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_web_player.py", "-k", "fix_this_frame", "--basetemp", env["TMPDIR"] + "/inner"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_browser_tests_are_skipped_with_the_reason_when_chromium_is_absent(tmp_path):
    run = _run_player_tests({browser_support.CHROMIUM_ENV: "none", "TMPDIR": str(tmp_path),
                             browser_support.REQUIRE_ENV: "0"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout and "apt-get install -y chromium" in run.stdout


def test_ci_can_require_the_browser_tests(tmp_path):
    run = _run_player_tests({browser_support.CHROMIUM_ENV: "none", "TMPDIR": str(tmp_path),
                             browser_support.REQUIRE_ENV: "1"})
    assert run.returncode == 1 and "skipped" not in run.stdout.splitlines()[-1]
    assert "turned off by MEMVOS_CHROMIUM" in run.stdout


def test_a_test_that_rewrites_a_tracked_file_fails_the_run_on_ci(tmp_path):
    """The guard itself: an inner run whose only test touches a tracked file (README.md's mtime,
    put back afterwards by this test) fails with CI=true and names the file."""
    probe = ROOT / "tests" / "test_zz_probe_rewrites_a_tracked_file.py"
    readme = ROOT / "README.md"
    stat = readme.stat()
    probe.write_text(
        "import os\n"
        "def test_touch():\n"
        f"    os.utime({str(readme)!r}, ns=({stat.st_atime_ns}, {stat.st_mtime_ns + 10**9}))\n")
    try:
        env = dict(os.environ, CI="true", TMPDIR=str(tmp_path))
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe),
                              "--basetemp", str(tmp_path / "inner")], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    finally:
        probe.unlink()
        os.utime(readme, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run.returncode == 1, run.stdout
    assert "FAILED: tracked files changed during the run: README.md" in run.stdout
