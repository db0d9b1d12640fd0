"""bench/gpu_all.py, the one command a lent GPU runs, works end to end: a dry run on the CPU
with tiny sizes, the official comparison included (against a stand-in checkout)."""
import json
import subprocess
import sys
from pathlib import Path

from official_stub import make_official_checkout

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_all_dry_run_prints_every_section(tmp_path):
    official = make_official_checkout(tmp_path / "xmem")
    report_path = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_all.py"), "--device", "cpu", "--quick",
                           "--official", str(official), "--json", str(report_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    text = done.stdout
    for title in ("1. tests that need CUDA", "2. variants", "3. official XMem beside ours", "4. long run",
                  "5. summary"):
        assert title in text, title
    assert "default_for('cpu') should return" in text
    report = json.loads(report_path.read_text())
    assert "test_host_copies.py::test_cuda_copy_does_not_wait_for_the_device" in report["tests"]["ids"]
    ran = {r["variant"]: r for r in report["variants"] if not r["skipped"]}
    assert set(ran) == {"plain", "fuse", "default"}
    assert all(r["pass"] for r in ran.values() if r["precision"] == "fp32")
    assert [len(r["runs"]) for r in ran.values()] == [2] * len(ran)   # 1 and 2 objects
    # The stand-in is our engine in XMem mode: the CLI path (XMem++ mode) gives the same masks.
    assert [(r["objects"], r["ours_vs_fp32"][0]) for r in report["official"]] == [(1, 0), (2, 0)]
    assert [p["frame"] for p in report["long"][0]["points"]] == [2, 10, 20]
