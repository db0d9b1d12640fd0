"""Queue the example workflows on a running ComfyUI and report how each one ended (run by hand).

    python examples_workflows/tools/run_in_comfyui.py [--url http://127.0.0.1:8188] [workflow.json ...]

The UI-format files are turned into API prompts with the server's own node definitions
(``/object_info``: widget names in order), so this checks the files against the real ComfyUI,
core nodes included. Needs the pack installed in that ComfyUI's custom_nodes, and XMem.pth in
models/memvos or a connection for its download. Exit status 1 if any workflow failed.
"""
import argparse
import glob
import json
import os
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote"}


def call(url, path, data=None):
    request = urllib.request.Request(url + path, data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return {"error": exc.code, "detail": json.loads(exc.read() or b"{}")}


def widget_names(definition):
    names = []
    for section in ("required", "optional"):
        for name in definition.get("input_order", {}).get(section, list(definition["input"].get(section, {}))):
            spec = definition["input"][section][name]
            options = spec[1] if len(spec) > 1 else {}
            if (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES) and not options.get("forceInput"):
                names.append(name)
    return names


def to_prompt(workflow, object_info):
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        if node["type"] not in object_info:
            raise SystemExit(f"node type {node['type']} is not installed in this ComfyUI")
        inputs = dict(zip(widget_names(object_info[node["type"]]), node["widgets_values"]))
        for entry in node["inputs"]:
            if entry.get("link") is not None:
                link = links[entry["link"]]
                inputs[entry["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def run(url, path, object_info, timeout_s):
    queued = call(url, "/prompt", {"prompt": to_prompt(json.load(open(path, encoding="utf-8")), object_info),
                                   "client_id": "memvos-examples"})
    if "prompt_id" not in queued:
        return False, f"refused: {json.dumps(queued)[:2000]}"
    started = time.time()
    while time.time() - started < timeout_s:
        history = call(url, f"/history/{queued['prompt_id']}")
        if queued["prompt_id"] in history:
            status = history[queued["prompt_id"]]["status"]
            errors = [m[1].get("exception_message") for m in status.get("messages", []) if m[0] == "execution_error"]
            return status["status_str"] == "success", f"{status['status_str']} in {time.time() - started:.0f} s {errors}"
        time.sleep(2)
    return False, f"no result within {timeout_s} s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("workflows", nargs="*")
    args = parser.parse_args()
    paths = args.workflows or sorted(glob.glob(os.path.join(os.path.dirname(HERE), "*.json")))
    object_info = call(args.url, "/object_info")
    ok = True
    for path in paths:
        good, message = run(args.url, path, object_info, args.timeout)
        ok &= good
        print(f"{os.path.basename(path)}: {message}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
