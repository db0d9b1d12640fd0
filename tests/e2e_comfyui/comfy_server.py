"""ComfyUI server side of the check_*_in_comfyui.py scripts: start one on loopback, check the pack
loaded, and the command line they share (run_check)."""
import argparse
import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACK_PREFIX = "MemVOS"
EXTENSION_PATH = "/extensions/ComfyUI-MemVOS/"


class Report:
    def __init__(self):
        self.rows = []

    def check(self, name, ok, detail=""):
        self.rows.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  -- {detail}" if detail else ""), flush=True)
        return ok

    @property
    def failed(self):
        return [r for r in self.rows if not r["ok"]]


def get_json(url, path):
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.load(response)


def post_json(url, path, data):
    request = urllib.request.Request(url + path, data=json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(comfyui, python, base_dir):
    """Base dir with the pack linked into custom_nodes and synthetic weights; ComfyUI on loopback.

    Returns (process, url, log path)."""
    base = Path(base_dir)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "ComfyUI-MemVOS"
    if not link.exists():
        link.symlink_to(ROOT)
    weights = base / "models" / "memvos" / "XMem.pth"
    if not weights.exists():
        weights.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c",
                        "import sys, torch; sys.path.insert(0, sys.argv[1]);"
                        "from memvos_core.network.synthetic import synthetic_state_dict;"
                        "torch.save(synthetic_state_dict(), sys.argv[2])", str(ROOT), str(weights)], check=True)
    port = free_port()
    log_path = base / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                             "--base-directory", str(base), "--database-url", f"sqlite:///{base}/db.sqlite"],
                            cwd=comfyui, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ComfyUI exited during start-up; see {log_path}")
        try:
            get_json(url, "/system_stats")
            return proc, url, log_path
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise SystemExit(f"ComfyUI did not answer on {url} within 300 s; see {log_path}")


def check_server(report, url, log_path):
    stats = get_json(url, "/system_stats")["system"]
    report.check("server versions", True, f"ComfyUI {stats['comfyui_version']}, "
                 f"required frontend {stats.get('required_frontend_version')}")
    if log_path:
        text = Path(log_path).read_text(errors="replace")
        ours = [line for line in text.splitlines() if "MemVOS" in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
        loaded = any("custom_nodes/ComfyUI-MemVOS" in line and "seconds" in line and "IMPORT FAILED" not in line
                     for line in text.splitlines())
        report.check("server log: pack imported, no import error of ours", loaded and not ours,
                     "; ".join(ours) or "listed under 'Import times for custom nodes'")
        others = sorted({line.split("IMPORT FAILED:")[1].strip() for line in text.splitlines() if "IMPORT FAILED:" in line})
        if others:
            print(f"note  other modules failed to import (not ours): {', '.join(others)}")
    info = get_json(url, "/object_info")
    ours = sorted(k for k in info if k.startswith(PACK_PREFIX))
    expected = sorted(_pack_node_names())
    report.check("/object_info has every MemVOS node", ours == expected, ", ".join(ours))
    listed = [p for p in get_json(url, "/extensions") if p.startswith(EXTENSION_PATH)]
    report.check("/extensions lists the pack's web modules", f"{EXTENSION_PATH}memvos_player.js" in listed,
                 f"{len(listed)} modules")


def _pack_node_names():
    # Imported as a package from its folder, as ComfyUI does (its modules import relatively).
    spec = importlib.util.spec_from_file_location("memvos_pack_for_check", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return list(module.NODE_CLASS_MAPPINGS)


def run_check(description, run_browser, base_default, server_checks=None, add_arguments=None):
    """The scripts' command line: start ComfyUI (--comfyui) or use one (--url), check the server,
    run ``run_browser(report, url, args)`` (async), print the tally. ``add_arguments(parser)`` adds
    a script's own options. Returns the exit status."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running ComfyUI, e.g. http://127.0.0.1:8188")
    parser.add_argument("--server-log", help="that ComfyUI's log, to check the pack imported cleanly")
    parser.add_argument("--comfyui", help="ComfyUI folder to start (instead of --url)")
    parser.add_argument("--python", default=sys.executable, help="Python with ComfyUI's requirements")
    parser.add_argument("--base-dir", default=base_default, help="ComfyUI's --base-directory")
    parser.add_argument("--shots", default=str(ROOT / "docs"), help="folder for the screenshots")
    parser.add_argument("--internal-size", type=int, default=64, help="New Session internal_size for the runs")
    parser.add_argument("--timeout", type=int, default=600, help="seconds to wait for one workflow run")
    parser.add_argument("--no-vue", action="store_true", help="skip the Vue (Nodes 2.0) pass")
    parser.add_argument("--json", help="write the results here")
    parser.set_defaults(server_pid=None)  # the server's process id when this script started it
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    if not (args.url or args.comfyui):
        parser.error("give --url of a running ComfyUI or --comfyui to start one")
    Path(args.shots).mkdir(parents=True, exist_ok=True)
    report, proc = Report(), None
    try:
        if args.comfyui:
            proc, url, log_path = start_server(args.comfyui, args.python, args.base_dir)
            args.server_log, args.server_pid = str(log_path), proc.pid
        else:
            url, log_path = args.url.rstrip("/"), args.server_log
        check_server(report, url, log_path)
        # A first start of a base directory opens the template browser over the canvas (the
        # frontend's tutorial); mark it seen, as for a returning user.
        post_json(url, "/settings/Comfy.TutorialCompleted", True)
        if server_checks:
            server_checks(report, url)
        asyncio.run(run_browser(report, url, args))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps(report.rows, indent=1))
    print(f"{len(report.rows) - len(report.failed)}/{len(report.rows)} checks passed")
    return 1 if report.failed else 0
