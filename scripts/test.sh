#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole suite: `python -m pytest -q tests -n 2 --dist loadfile`
# (pytest-xdist: one worker per core, a test file's tests in one worker so its module fixtures are
# built once; MEMVOS_TEST_WORKERS=0 runs everything in this process).
# Set-up (scripts/bootstrap.py): the active virtual/conda environment, or the project's .venv;
# torch only if it does not import there (an existing torch is never replaced); the requirements
# and test tools; Debian's Chromium for the browser tests when missing and running as root
# (otherwise those tests are skipped, with the reason). MEMVOS_CHROMIUM=none turns them off.
set -euo pipefail
cd "$(dirname "$0")/.."
BOOT_PYTHON="$(command -v python3 || command -v python)" || { echo "error: Python 3.10+ is needed (python3 not found)" >&2; exit 2; }
PY="$("$BOOT_PYTHON" scripts/bootstrap.py --requirements requirements.txt requirements-test.txt --browser | tail -n 1)"
"$PY" -m pytest -q tests -n "${MEMVOS_TEST_WORKERS:-2}" --dist loadfile "$@"
