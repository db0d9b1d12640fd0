#!/usr/bin/env bash
# Everything a lent GPU should measure, in under 8 minutes: see bench/gpu_all.py.
#   bash bench/gpu_all.sh [--official PATH-TO-XMEM-CHECKOUT] [--json gpu.json]
set -euo pipefail
PYTHONUNBUFFERED=1 exec python3 "$(dirname "$0")/gpu_all.py" --device cuda "$@"
