"""Set-up for scripts/demo.sh and scripts/test.sh: the Python to use, torch, the requirements.

    python3 scripts/bootstrap.py [--requirements FILE ...] [--package NAME ...] [--browser] [--dry-run]

Prints the interpreter to use on its last stdout line; everything else goes to stderr.
Standard library only: it runs before anything is installed.

* Interpreter: ``$MEMVOS_PYTHON`` if set (e.g. ComfyUI's Python), else the Python running this
  script when it is already inside a virtual or conda environment, else the project's own
  ``.venv`` (created on first use), so that system Pythons that refuse ``pip install``
  (PEP 668, Debian/Ubuntu) work and nothing is installed into them.
* torch is installed only when ``import torch`` fails in that interpreter: an existing torch
  (ComfyUI's, with its CUDA build and torchvision) is never replaced. Which build, when one is
  needed: ``$MEMVOS_TORCH_PIP`` (pip arguments) if set; with an NVIDIA GPU visible
  (``nvidia-smi -L``), PyPI's default build (CUDA on Linux); else a torch wheel this machine's pip
  configuration offers without downloading (find-links); else on Linux the CPU-only build from
  PyTorch's CPU index (about 200 MB instead of several GB of CUDA libraries).
* ``--browser``: Chromium for the browser tests, installed with apt-get when missing and running
  as root; otherwise a note that those tests will be skipped and how to enable them.
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
OFF_VALUES = ("", "none", "off", "0", "no")


def say(text):
    print(f"[setup] {text}", file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


# ----------------------------------------------------------------------------- interpreter

def in_environment(environ=None, prefix=None, base_prefix=None):
    """Is the running Python inside a virtual or conda environment (where pip may install)?"""
    environ = os.environ if environ is None else environ
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = getattr(sys, "base_prefix", sys.prefix) if base_prefix is None else base_prefix
    return bool(environ.get("VIRTUAL_ENV") or environ.get("CONDA_PREFIX") or prefix != base_prefix
                or os.path.isdir(os.path.join(prefix, "conda-meta")))


def venv_python(venv):
    windows = venv / "Scripts" / "python.exe"
    return windows if windows.exists() else venv / "bin" / "python"


def choose_python(run, environ=None, inside=None, venv=VENV):
    """The interpreter everything is installed into and run with (a path string)."""
    environ = os.environ if environ is None else environ
    inside = in_environment(environ) if inside is None else inside
    chosen = environ.get("MEMVOS_PYTHON")
    if chosen:
        path = shutil.which(chosen)
        if path is None:
            raise SetupError(f"MEMVOS_PYTHON={chosen!r} is not an executable Python: point it at one "
                             "(e.g. ComfyUI's venv/bin/python) or unset it")
        say(f"using MEMVOS_PYTHON={path}")
        return path
    if inside:
        say(f"using the active environment's Python: {sys.executable}")
        return sys.executable
    python = venv_python(venv)
    if python.exists():
        say(f"using the project environment {venv}")
        return str(python)
    say(f"creating the project environment {venv} (not inside a virtual environment)")
    try:
        run([sys.executable, "-m", "venv", str(venv)])
    except SetupError:
        shutil.rmtree(venv, ignore_errors=True)
        raise SetupError(f"could not create {venv}: install Python's venv module (Debian/Ubuntu: "
                         "apt-get install python3-venv), or activate an environment of your own first") from None
    return str(venv_python(venv))


# ----------------------------------------------------------------------------- torch

@dataclass(frozen=True)
class TorchFacts:
    importable: Optional[str]  # the installed torch's version, or None
    nvidia_gpu: bool
    local_wheel: Optional[str]  # version of a torch wheel pip can install without a download
    system: str
    override: Optional[str]    # $MEMVOS_TORCH_PIP


def torch_install_args(facts):
    """pip arguments that install torch, or None when torch is already importable."""
    if facts.importable:
        return None
    if facts.override:
        return shlex.split(facts.override)
    if facts.nvidia_gpu:
        return ["torch"]  # PyPI's Linux wheels are CUDA builds; on Windows see the README
    if facts.local_wheel:
        return [f"torch=={facts.local_wheel}"]
    if facts.system == "Linux":
        return ["torch", "--index-url", CPU_INDEX]
    return ["torch"]  # macOS (CPU/MPS) and Windows (CPU) builds on PyPI


def importable_torch(python):
    probe = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def nvidia_gpu_visible():
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def local_torch_wheel(python):
    """The torch version pip would install without any index (from find-links), or None.
    pip's own resolver answers, in a dry run that downloads and installs nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        probe = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "--ignore-installed",
                                "--quiet", "--report", report, "torch"], capture_output=True, text=True)
        if probe.returncode != 0 or not os.path.isfile(report):
            return None
        with open(report) as f:
            installs = json.load(f).get("install", [])
    versions = [item["metadata"]["version"] for item in installs if item["metadata"]["name"].lower() == "torch"]
    return versions[0] if versions else None


def torch_facts(python, environ=None):
    """What decides the torch install. ``python`` may not exist yet (a dry run before the
    project environment is made): then torch is missing there, and pip's configuration is
    read through the Python running this script (the environment's pip inherits it)."""
    environ = os.environ if environ is None else environ
    exists = Path(python).exists()
    importable = importable_torch(python) if exists else None
    if importable:
        return TorchFacts(importable, False, None, platform.system(), None)
    override = environ.get("MEMVOS_TORCH_PIP") or None
    nvidia = nvidia_gpu_visible() if not override else False
    local = local_torch_wheel(python if exists else sys.executable) if not (override or nvidia) else None
    return TorchFacts(None, nvidia, local, platform.system(), override)


def describe(facts, args):
    if args is None:
        return f"torch {facts.importable} is already importable: kept as it is"
    if facts.override:
        why = "from MEMVOS_TORCH_PIP"
    elif facts.nvidia_gpu:
        why = "an NVIDIA GPU is visible: PyPI's CUDA build"
    elif facts.local_wheel:
        why = "a wheel this machine's pip configuration offers locally"
    elif facts.system == "Linux":
        why = "no NVIDIA GPU visible: the CPU-only build; set MEMVOS_TORCH_PIP for another"
    else:
        why = f"PyPI's build for {facts.system}"
    return f"torch is not importable; installing {' '.join(args)} ({why})"


# ----------------------------------------------------------------------------- browser

def chromium_found(environ=None):
    environ = os.environ if environ is None else environ
    chosen = environ.get("MEMVOS_CHROMIUM")
    if chosen is not None:
        return shutil.which(chosen) if chosen.strip().lower() not in OFF_VALUES else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_plan(environ=None, is_root=None, has_apt=None):
    """``("ok" | "off" | "install" | "skip", message)`` for the browser tests."""
    environ = os.environ if environ is None else environ
    is_root = (hasattr(os, "geteuid") and os.geteuid() == 0) if is_root is None else is_root
    has_apt = (shutil.which("apt-get") is not None) if has_apt is None else has_apt
    chosen = environ.get("MEMVOS_CHROMIUM")
    if chosen is not None and chosen.strip().lower() in OFF_VALUES:
        return "off", f"browser tests turned off (MEMVOS_CHROMIUM={chosen!r}): they will be skipped"
    found = chromium_found(environ)
    if found:
        return "ok", f"browser tests use {found}"
    if chosen is not None:
        return "skip", (f"MEMVOS_CHROMIUM={chosen!r} is not an executable: the browser tests will be "
                        "skipped; point it at a Chromium binary")
    if is_root and has_apt:
        return "install", "Chromium is missing: installing Debian's chromium package for the browser tests"
    return "skip", ("Chromium was not found: the browser tests (tests/test_web_*.py) will be skipped. "
                    "To run them: sudo apt-get install -y chromium (or run this script as root), or set "
                    "MEMVOS_CHROMIUM=/path/to/chromium")


# ----------------------------------------------------------------------------- steps

class Runner:
    """Runs commands (or, with --dry-run, prints them)."""

    def __init__(self, live=True):
        self.live = live

    def __call__(self, command, env=None):
        say(("would run: " if not self.live else "$ ") + shlex.join(str(c) for c in command))
        if not self.live:
            return
        done = subprocess.run(command, env=env)
        if done.returncode != 0:
            raise SetupError(f"this command failed (exit {done.returncode}): {shlex.join(str(c) for c in command)}")


def setup(requirements, packages, browser, run):
    timings = []
    start = time.monotonic()
    python = choose_python(run)
    timings.append(("interpreter", time.monotonic() - start))

    start = time.monotonic()
    facts = torch_facts(python)
    args = torch_install_args(facts)
    say(describe(facts, args))
    if args is not None:
        try:
            run([python, "-m", "pip", "install", "--quiet", *args])
        except SetupError as exc:
            raise SetupError(f"{exc}. Install torch into {python} yourself (the command for your platform is on "
                             "pytorch.org), or set MEMVOS_TORCH_PIP to pip arguments that work here, then run "
                             "this again") from None
        if run.live and importable_torch(python) is None:
            raise SetupError(f"torch was installed but does not import in {python}: see pip's messages above")
    timings.append(("torch", time.monotonic() - start))

    start = time.monotonic()
    if requirements or packages:
        command = [python, "-m", "pip", "install", "--quiet"]
        for file in requirements:
            command += ["-r", str(ROOT / file)]
        run(command + list(packages))
    timings.append(("requirements", time.monotonic() - start))

    if browser:
        start = time.monotonic()
        action, message = browser_plan()
        say(message)
        if action == "install":
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            try:
                run(["apt-get", "update", "-q"], env=env)
                run(["apt-get", "install", "-y", "-q", "chromium"], env=env)
            except SetupError as exc:
                say(f"warning: {exc}; the browser tests will be skipped")
        timings.append(("browser", time.monotonic() - start))
    say("set-up took " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings))
    return python


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requirements", nargs="*", default=[], metavar="FILE",
                    help="requirements files (relative to the repository) to install (default: none)")
    ap.add_argument("--package", nargs="*", default=[], metavar="NAME", help="extra packages (default: none)")
    ap.add_argument("--browser", action="store_true", help="also make sure Chromium is there for the browser tests")
    ap.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = ap.parse_args(argv)
    try:
        python = setup(args.requirements, args.package, args.browser, Runner(live=not args.dry_run))
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
