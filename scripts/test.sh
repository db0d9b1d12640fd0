#!/usr/bin/env bash
# Sets up a fresh machine (torch, test tools, browser for the web tests) and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "torch===2.13.0" "torchvision==0.28.0"
python3 -m pip install -q -r requirements.txt -r requirements-test.txt
# Browser tests (tests/test_web_player.py): Debian's Chromium driven by the playwright package
# (playwright's own browser download is not used).
if [ ! -x /usr/bin/chromium ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
python3 -m pytest -q tests "$@"
