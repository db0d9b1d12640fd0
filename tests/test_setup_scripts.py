"""scripts/bootstrap.py, the set-up behind scripts/demo.sh and scripts/test.sh: which Python, which
torch (never replacing one that imports), and what happens to the browser tests."""
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = ROOT / "scripts" / "bootstrap.py"
_spec = importlib.util.spec_from_file_location("memvos_bootstrap", BOOTSTRAP)
boot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(boot)


def facts(**changes):
    base = dict(importable=None, nvidia_gpu=False, local_wheel=None, system="Linux", override=None)
    return boot.TorchFacts(**{**base, **changes})


# ----------------------------------------------------------------------------- torch choice

def test_an_importable_torch_is_never_replaced():
    assert boot.torch_install_args(facts(importable="2.5.1+cu124", nvidia_gpu=True)) is None
    assert "kept" in boot.describe(facts(importable="2.5.1+cu124"), None)


def test_torch_choice_without_torch():
    assert boot.torch_install_args(facts(override="torch --index-url https://example.org/cu128", nvidia_gpu=True)) \
        == ["torch", "--index-url", "https://example.org/cu128"]
    assert boot.torch_install_args(facts(nvidia_gpu=True, local_wheel="2.13.0+cpu")) == ["torch"]
    assert boot.torch_install_args(facts(local_wheel="2.13.0+cpu")) == ["torch==2.13.0+cpu"]
    assert boot.torch_install_args(facts()) == ["torch", "--index-url", boot.CPU_INDEX]
    assert boot.torch_install_args(facts(system="Darwin")) == ["torch"]


def _fake_wheel(folder, version):
    """A minimal torch wheel: enough metadata for pip's resolver."""
    dist = f"torch-{version}.dist-info"
    path = Path(folder) / f"torch-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        whl.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}/RECORD", "")
    return path


def test_a_local_wheel_is_found_without_downloading(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # only what this test offers
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    assert boot.local_torch_wheel(sys.executable) is None
    _fake_wheel(wheels, "9.9.1")
    assert boot.local_torch_wheel(sys.executable) == "9.9.1"


def _path_with_fake_nvidia_smi(tmp_path, output, code=0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    smi.chmod(0o755)
    return str(bin_dir)


def test_nvidia_gpu_is_seen_through_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with_fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-1)"))
    assert boot.nvidia_gpu_visible()
    monkeypatch.setenv("PATH", _path_with_fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed", code=9))
    assert not boot.nvidia_gpu_visible()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not boot.nvidia_gpu_visible()


def _bootstrap(env_changes, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(env_changes)
    return subprocess.run([sys.executable, str(BOOTSTRAP), "--dry-run", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_dry_run_keeps_the_torch_of_the_chosen_python():
    run = _bootstrap({"MEMVOS_PYTHON": sys.executable}, "--requirements", "requirements.txt")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == sys.executable
    assert "already importable: kept" in run.stderr
    assert not any("install" in line and "torch" in line for line in run.stderr.splitlines() if "would run" in line)
    assert "-r " + str(ROOT / "requirements.txt") in run.stderr


def test_dry_run_in_a_python_without_torch_with_a_gpu_takes_pypis_build(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = str(boot.venv_python(tmp_path / "venv"))
    path = _path_with_fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-1)") + os.pathsep + os.environ["PATH"]
    run = _bootstrap({"MEMVOS_PYTHON": python, "PATH": path})
    assert run.returncode == 0, run.stderr
    assert f"would run: {python} -m pip install --quiet torch\n" in run.stderr
    assert "an NVIDIA GPU is visible" in run.stderr


def test_a_missing_memvos_python_is_a_clear_error(tmp_path):
    run = _bootstrap({"MEMVOS_PYTHON": str(tmp_path / "nope")})
    assert run.returncode == 2 and "MEMVOS_PYTHON=" in run.stderr and "Traceback" not in run.stderr


# ----------------------------------------------------------------------------- interpreter

def test_environment_detection():
    assert boot.in_environment({"VIRTUAL_ENV": "/x/.venv"}, "/usr", "/usr")
    assert boot.in_environment({"CONDA_PREFIX": "/opt/conda"}, "/usr", "/usr")
    assert boot.in_environment({}, "/x/.venv", "/usr")
    assert not boot.in_environment({}, "/usr", "/usr")


def test_outside_any_environment_the_project_venv_is_made_and_used(tmp_path):
    commands = []

    def run(command, env=None):
        commands.append(command)
    run.live = False
    venv = tmp_path / ".venv"
    python = boot.choose_python(run, environ={}, inside=False, venv=venv)
    assert commands == [[sys.executable, "-m", "venv", str(venv)]]
    assert python == str(venv / "bin" / "python")
    assert boot.choose_python(run, environ={}, inside=True, venv=venv) == sys.executable
    assert len(commands) == 1


def test_a_venv_that_cannot_be_made_says_what_to_install(tmp_path):
    def run(command, env=None):
        raise boot.SetupError("exit 1")
    run.live = True
    with pytest.raises(boot.SetupError, match="python3-venv"):
        boot.choose_python(run, environ={}, inside=False, venv=tmp_path / ".venv")


# ----------------------------------------------------------------------------- browser

@pytest.mark.parametrize("environ, is_root, has_apt, action, words", [
    ({"MEMVOS_CHROMIUM": "none"}, True, True, "off", "turned off"),
    ({"MEMVOS_CHROMIUM": "/bin/sh"}, False, False, "ok", "/bin/sh"),
    ({"MEMVOS_CHROMIUM": "/nowhere/chromium"}, True, True, "skip", "not an executable"),
    ({"PATH": "/nowhere"}, True, True, "install", "installing"),
    ({"PATH": "/nowhere"}, False, True, "skip", "sudo apt-get install -y chromium"),
    ({"PATH": "/nowhere"}, True, False, "skip", "MEMVOS_CHROMIUM=/path/to/chromium"),
])
def test_browser_plan(environ, is_root, has_apt, action, words, monkeypatch):
    if "PATH" in environ:
        monkeypatch.setenv("PATH", environ["PATH"])
    got, message = boot.browser_plan({k: v for k, v in environ.items() if k != "PATH"}, is_root, has_apt)
    assert got == action and words in message


def test_a_failed_torch_install_says_what_to_do_instead(tmp_path, monkeypatch):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    monkeypatch.setenv("MEMVOS_PYTHON", str(boot.venv_python(tmp_path / "venv")))
    monkeypatch.setenv("MEMVOS_TORCH_PIP", "torch==0.0.0-not-there")

    def run(command, env=None):
        if "pip" in command:
            raise boot.SetupError("this command failed (exit 1)")
    run.live = True
    with pytest.raises(boot.SetupError, match="MEMVOS_TORCH_PIP to pip arguments that work here"):
        boot.setup([], [], False, run)
