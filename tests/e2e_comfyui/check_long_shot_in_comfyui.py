"""Check the long-shot path in a real ComfyUI server (run by hand; never in CI).

    python3 tests/e2e_comfyui/check_long_shot_in_comfyui.py --comfyui /path/to/ComfyUI \
        --python /path/to/venv/bin/python --base-dir /tmp/memvos_long/base [--frames 240]

Sets up a base directory (pack linked into custom_nodes, generated XMem.pth), starts ComfyUI on a
free loopback port, and over its HTTP API:

1. the new nodes are listed, every frames socket takes ``IMAGE,VIDEO,MEMVOS_FRAMES``;
2. example 5 (UI format, turned into a prompt with the server's own /object_info; internal_size
   lowered for a CPU) runs: Save Masks wrote 16-bit PNGs named like the frames, an mp4 and label
   maps; the stored prompt shows the pack's hook wrote Propagate's linked outputs;
3. the same prompt with Propagate's label_map connected to a Preview Image: Propagate runs again
   (its cache key changed) and builds it, without propagating again;
4. a generated ``--frames`` shot through Load Video -> ... -> Save Masks is cancelled with
   /interrupt while Save Masks writes: finished PNGs stay, no ``.part`` file, no video;
5. a bad input (Load Frames of a missing folder) fails with the one-line message.
Prints one line per check; exit status 1 if any failed.
"""
import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from comfy_server import ROOT, check_server, get_json, post_json, start_server

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))


def _tool(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = _tool(ROOT / "examples_workflows" / "tools" / "run_in_comfyui.py", "memvos_run_in_comfyui")
EXAMPLE = ROOT / "examples_workflows" / "memvos_5_long_shot_from_video.json"
FRAMES_INPUT = "IMAGE,VIDEO,MEMVOS_FRAMES"


class Report:
    def __init__(self):
        self.failed = 0

    def check(self, name, ok, detail=""):
        self.failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  -- {detail}" if detail else ""), flush=True)
        return ok


def queue(url, prompt):
    answer = RUNNER.call(url, "/prompt", {"prompt": prompt, "client_id": "memvos-long-shot"})
    if "prompt_id" not in answer:
        raise SystemExit(f"prompt refused: {json.dumps(answer)[:1500]}")
    return answer["prompt_id"]


def wait(url, prompt_id, timeout_s):
    started = time.time()
    while time.time() - started < timeout_s:
        history = get_json(url, f"/history/{prompt_id}")
        if prompt_id in history:
            return history[prompt_id]
        time.sleep(1)
    raise SystemExit(f"prompt {prompt_id} gave no result within {timeout_s} s")


def messages(entry, kind):
    return [m[1] for m in entry["status"].get("messages", []) if m[0] == kind]


def example_prompt(object_info, internal_size):
    workflow = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    prompt = RUNNER.to_prompt(workflow, object_info)
    for node in prompt.values():
        if node["class_type"] == "MemVOSNewSession":
            node["inputs"]["internal_size"] = internal_size
    return prompt


def check_example(report, url, base, object_info, internal_size):
    prompt = example_prompt(object_info, internal_size)
    started = time.time()
    entry = wait(url, queue(url, prompt), 1800)
    took = time.time() - started
    ok = entry["status"]["status_str"] == "success"
    report.check("example 5 runs", ok, f"{entry['status']['status_str']} in {took:.0f} s "
                 f"{[m.get('exception_message') for m in messages(entry, 'execution_error')]}")
    if not ok:
        return None
    propagate = next(i for i, n in prompt.items() if n["class_type"] == "MemVOSPropagate")
    stored = entry["prompt"][2][propagate]["inputs"]
    report.check("the pack's hook wrote into the queued prompt that Propagate's mask / label_map are unused",
                 stored.get("memvos_linked_outputs") == "", repr(stored.get("memvos_linked_outputs")))
    out = base / "output" / "memvos" / "long_shot"
    matte = sorted(out.glob("matte_*"))
    pngs = sorted(p.name for p in (out / "matte_00001").glob("*.png")) if (out / "matte_00001").is_dir() else []
    report.check("Save Masks: 16 PNGs named like the frames", pngs == [f"{t:05d}.png" for t in range(16)],
                 f"{len(pngs)} files in {out / 'matte_00001'}")
    if pngs:
        mode = Image.open(out / "matte_00001" / pngs[0]).mode
        report.check("the mattes are 16-bit", mode.startswith("I;16") or mode == "I", mode)
    report.check("Save Masks: the mp4 beside them", (out / "matte_00001.mp4").is_file(), ", ".join(p.name for p in matte))
    labels = sorted((out / "labels_00001").glob("*.png")) if (out / "labels_00001").is_dir() else []
    report.check("Save Masks: indexed label maps", len(labels) == 16 and Image.open(labels[0]).mode == "P",
                 f"{len(labels)} files")
    no_parts = [str(p) for p in out.rglob("*.part")]
    report.check("no .part file left", not no_parts, ", ".join(no_parts))
    return prompt, took


def check_new_link(report, url, prompt, first_took):
    propagate = next(i for i, n in prompt.items() if n["class_type"] == "MemVOSPropagate")
    prompt = json.loads(json.dumps(prompt))
    prompt["900"] = {"class_type": "PreviewImage", "inputs": {"images": [propagate, 3]}}
    started = time.time()
    entry = wait(url, queue(url, prompt), 1800)
    took = time.time() - started
    cached = [n for m in messages(entry, "execution_cached") for n in m.get("nodes", [])]
    report.check("a new link to label_map re-runs Propagate (new cache key) and succeeds",
                 entry["status"]["status_str"] == "success" and propagate not in cached,
                 f"{entry['status']['status_str']}; cached: {sorted(cached, key=int)}")
    shown = entry["outputs"].get("900", {}).get("images", [])
    report.check("the Preview Image got the label maps", len(shown) == 16, f"{len(shown)} images")
    report.check("...without propagating again (the node kept its run)", took < 0.5 * first_took,
                 f"{took:.0f} s vs {first_took:.0f} s for the first run")


def check_cancel(report, url, base, frames, internal_size):
    from bench_long_shot_nodes import prompt, write_shot
    from pack_loader import pack_for_tests
    write_shot(pack_for_tests(), str(base / "input"), frames, 360, 640, 24.0)
    prompt_id = queue(url, prompt(internal_size, "memvos/cancel/matte"))
    folder = base / "output" / "memvos" / "cancel" / "matte_00001"
    deadline = time.time() + 3600
    while time.time() < deadline:  # Save Masks is writing once its folder holds a few frames
        if folder.is_dir() and len(list(folder.glob("*.png"))) >= 10:
            break
        if prompt_id in get_json(url, f"/history/{prompt_id}"):
            break  # ended before Save Masks got there: reported below
        time.sleep(0.2)
    post_json(url, "/interrupt", {})
    entry = wait(url, prompt_id, 600)
    written = sorted(folder.glob("*.png"))
    parts = [str(p) for p in (base / "output" / "memvos" / "cancel").rglob("*.part")]
    report.check("cancel during Save Masks stops it", entry["status"]["status_str"] != "success" and
                 0 < len(written) < frames, f"{entry['status']['status_str']}, {len(written)} of {frames} PNGs kept")
    report.check("...leaving no .part file and no video", not parts and not (folder.parent / "matte_00001.mp4").exists(),
                 ", ".join(parts))
    kept = [np.asarray(Image.open(p)).dtype for p in written[:3]]
    report.check("...and the kept PNGs are complete", all(k == np.uint16 for k in kept), str(kept))


def check_bad_input(report, url):
    prompt = {"1": {"class_type": "MemVOSLoadFrames", "inputs": {"path": "no_such_shot", "fps": 24.0}},
              "2": {"class_type": "MemVOSGetFrames", "inputs": {"frames": ["1", 0], "start_frame": 0, "frame_count": 1,
                                                                "short_side": 0}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    entry = wait(url, queue(url, prompt), 300)
    errors = [m.get("exception_message", "") for m in messages(entry, "execution_error")]
    report.check("a missing folder is a one-line error", len(errors) == 1 and "does not exist" in errors[0]
                 and "\n" not in errors[0].strip(), repr(errors))


JS_LOAD_AND_CHECK = """async (wf) => {
  await window.app.loadGraphData(wf);
  const g = window.app.graph;
  const links = Object.values(g.links ?? {}).filter(Boolean);
  const bad = links.filter((l) => {
    const target = g.getNodeById(l.target_id), input = target?.inputs?.[l.target_slot];
    return !input || !LiteGraph.isValidConnection(l.type, input.type);
  }).map((l) => `${l.id}:${l.type}`);
  const api = (await window.app.graphToPrompt()).output;
  const frames = Object.values(api).filter((n) => 'frames' in (n.inputs ?? {})).map((n) => n.inputs.frames);
  return {nodes: g._nodes.length, links: links.length, bad, framesLinked: frames.every((f) => Array.isArray(f)),
          frameTypes: [...new Set(g._nodes.flatMap((n) => (n.inputs ?? []).filter((i) => i.name === 'frames')
                                                          .map((i) => i.type)))]};
}"""

JS_CONNECT_VIDEO = """() => {
  const video = LiteGraph.createNode('LoadVideo'), prop = LiteGraph.createNode('MemVOSPropagate');
  window.app.graph.add(video); window.app.graph.add(prop);
  const slot = prop.inputs.findIndex((i) => i.name === 'frames');
  return Boolean(video.connect(0, prop, slot));
}"""


async def check_frontend(report, url, workflows):
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium",
                                          args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = await browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            await page.goto(url + "/", wait_until="networkidle")
            await page.wait_for_function("() => window.app?.graph", timeout=60000)
            await page.keyboard.press("Escape")
            for name, workflow in workflows:
                got = await page.evaluate(JS_LOAD_AND_CHECK, workflow)
                report.check(f"frontend loads {name}: every link valid, frames linked in the API prompt",
                             got["links"] == len(workflow["links"]) and not got["bad"] and got["framesLinked"],
                             json.dumps(got))
            report.check("frontend: a VIDEO output connects to Propagate's frames socket",
                         await page.evaluate(JS_CONNECT_VIDEO))
            report.check("frontend: no page error", not errors, "; ".join(errors[:3]))
        finally:
            await browser.close()


def old_workflow(name, commit="bbab032"):
    """A workflow as saved before the frames sockets took VIDEO (their inputs typed IMAGE)."""
    import subprocess
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:examples_workflows/{name}"],
                          capture_output=True, text=True, check=True).stdout
    return json.loads(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--base-dir", required=True)
    parser.add_argument("--frames", type=int, default=240, help="frames of the shot that is cancelled")
    parser.add_argument("--internal-size", type=int, default=64)
    parser.add_argument("--browser", action="store_true", help="also load the workflows in the frontend "
                                                              "(headless Chromium, playwright)")
    parser.add_argument("--only-browser", action="store_true", help="skip the prompt runs")
    args = parser.parse_args()
    base = Path(args.base_dir)
    proc, url, log = start_server(args.comfyui, args.python, base)
    report = Report()
    try:
        check_server(report, url, log)
        info = get_json(url, "/object_info")
        for name in ("MemVOSLoadFrames", "MemVOSGetFrames", "MemVOSGetMasks", "MemVOSSaveMasks"):
            report.check(f"{name} is listed", name in info)
        frames_types = {k: v["input"]["required"]["frames"][0] for k, v in info.items()
                        if k.startswith("MemVOS") and "frames" in v["input"].get("required", {})}
        report.check("every required frames socket is the union", set(frames_types.values()) == {FRAMES_INPUT},
                     json.dumps(frames_types))
        if args.browser or args.only_browser:
            import asyncio
            workflows = [("example 5", json.loads(EXAMPLE.read_text(encoding="utf-8"))),
                         ("example 1 as saved before (frames typed IMAGE)",
                          old_workflow("memvos_1_one_keyframe_overlay.json")),
                         ("example 4 as saved before", old_workflow("memvos_4_long_shot_chunks.json"))]
            asyncio.run(check_frontend(report, url, workflows))
        if not args.only_browser:
            ran = check_example(report, url, base, info, args.internal_size)
            if ran is not None:
                check_new_link(report, url, *ran)
            check_cancel(report, url, base, args.frames, args.internal_size)
            check_bad_input(report, url)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(f"{'FAILED' if report.failed else 'all passed'}; server log {log}")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
