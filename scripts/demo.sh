#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job: the command line on the bundled example clip.
# Set-up (scripts/bootstrap.py): the active virtual/conda environment, or the project's .venv;
# torch only if it does not import there (an existing torch is never replaced); requirements.txt
# and PyAV. XMem.pth (about 250 MB) downloads from XMem's GitHub release into $MEMVOS_MODELS_DIR
# (default ~/.cache/memvos/models) on first use, verified before it is put in place; offline,
# pass --weights FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
BOOT_PYTHON="$(command -v python3 || command -v python)" || { echo "error: Python 3.10+ is needed (python3 not found)" >&2; exit 2; }
PY="$("$BOOT_PYTHON" scripts/bootstrap.py --requirements requirements.txt --package av | tail -n 1)"
"$PY" -m memvos_core \
    --frames examples_workflows/media/memvos_example_clip.mp4 \
    --masks examples_workflows/media/cli_masks \
    --out out/demo --weights XMem.pth --direction both "$@"
