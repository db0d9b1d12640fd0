#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job: the command line on the bundled example clip.
# XMem.pth (about 250 MB) downloads from XMem's GitHub release into $MEMVOS_MODELS_DIR
# (default ~/.cache/memvos/models) on first use, verified before it is put in place.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "torch===2.13.0" "torchvision==0.28.0"
python3 -m pip install -q -r requirements.txt av
python3 -m memvos_core \
    --frames examples_workflows/media/memvos_example_clip.mp4 \
    --masks examples_workflows/media/cli_masks \
    --out out/demo --weights XMem.pth --direction both "$@"
echo "masks written to out/demo (one indexed PNG per frame)"
