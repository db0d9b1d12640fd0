"""Server RSS through example 5's whole graph on a long shot in a real ComfyUI (run by hand; never
in CI: it needs a full ComfyUI install and a long video).

    python3 tests/e2e_comfyui/check_long_graph_rss_in_comfyui.py --comfyui /path/to/ComfyUI \
        --python /path/to/venv/bin/python --base-dir /tmp/memvos_rss/base --video /path/to/long_720p.mp4 \
        [--internal-size 64] [--max-minutes 80] [--json rss.json]

Starts ComfyUI on a free loopback port (pack linked, generated XMem.pth), links ``--video`` into
its input folder, paints a keyframe of two objects on frame 0 at the video's size (an indexed PNG
in input/memvos, as the editor saves one) and queues example 5 (Load Video -> Keyframes ->
Propagate -> Refine -> Composite, Save Masks of the refined matte and of the label maps) with that
video and keyframe. While it runs, the server process's RSS is read every ``--sample-s`` seconds
from /proc and the running node and its progress from ComfyUI's websocket; the table gives the RSS
at the start, the peak and the end, and per node the RSS when it started, its peak and when it
ended. Past ``--max-minutes`` the run is interrupted and the frames reached are reported. Exit
status 1 when the run did not succeed.
"""
import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from comfy_server import ROOT, check_server, get_json, post_json, start_server
from check_long_shot_in_comfyui import EXAMPLE, RUNNER, Report, messages, queue

CLIENT_ID = "memvos-long-shot"  # the client id check_long_shot_in_comfyui.queue sends with the prompt


def rss_mib(pid):
    """The process's resident set (VmRSS) and its high-water mark (VmHWM), MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def video_size(path):
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height, stream.frames


def write_keyframe(input_dir, width, height):
    """Two objects on frame 0 (an ellipse and a square), an indexed PNG the size of the frames."""
    yy, xx = np.mgrid[0:height, 0:width]
    labels = np.zeros((height, width), np.uint8)
    labels[((xx - width * 0.35) / (width * 0.12)) ** 2 + ((yy - height * 0.55) / (height * 0.2)) ** 2 < 1] = 1
    labels[int(height * 0.3):int(height * 0.5), int(width * 0.65):int(width * 0.65) + int(height * 0.2)] = 2
    image = Image.fromarray(labels, mode="P")
    image.putpalette([0, 0, 0, 255, 128, 0, 0, 96, 255] + [0] * (253 * 3))
    folder = input_dir / "memvos"
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / "rss_keyframe_f000000.png")
    return json.dumps({"format": "memvos-keyframes", "version": 1,
                       "objects": [{"id": 1, "name": "ellipse"}, {"id": 2, "name": "square"}],
                       "keyframes": [{"frame": 0, "file": "memvos/rss_keyframe_f000000.png", "objects": [1, 2]}]})


def graph_prompt(object_info, video_name, keyframes, internal_size):
    prompt = RUNNER.to_prompt(json.loads(EXAMPLE.read_text(encoding="utf-8")), object_info)
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "LoadVideo":
            inputs["file"] = video_name
        elif node["class_type"] == "MemVOSNewSession":
            inputs["internal_size"] = internal_size
        elif node["class_type"] == "MemVOSKeyframes":
            inputs["keyframes"] = keyframes
        elif node["class_type"] == "MemVOSSaveMasks":
            inputs["filename_prefix"] = inputs["filename_prefix"].replace("long_shot", "rss")
    return prompt


class Events(threading.Thread):
    """ComfyUI's websocket: the running node and its progress, kept for the sampler."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.ws_url = url.replace("http://", "ws://") + f"/ws?clientId={CLIENT_ID}"
        self.node, self.value, self.max, self.stop = None, 0, 0, False
        self.ready = threading.Event()

    def run(self):
        asyncio.run(self._listen())

    async def _listen(self):
        import aiohttp
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.ws_url, heartbeat=30) as ws:
                self.ready.set()
                async for msg in ws:
                    if self.stop:
                        return
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    data = json.loads(msg.data)
                    kind, detail = data.get("type"), data.get("data") or {}
                    if kind == "executing":
                        self.node, self.value, self.max = detail.get("node"), 0, 0
                    elif kind == "progress":
                        self.node, self.value, self.max = detail.get("node"), detail.get("value"), detail.get("max")


def stage_table(samples, prompt):
    """Per node, in the order they ran: RSS when it started, its peak, when it ended, seconds."""
    rows, order = {}, []
    for i, (t, rss, _, node, value, top) in enumerate(samples):
        if node is None:
            continue
        if node not in rows:
            before = samples[i - 1][1] if i else rss
            rows[node] = {"node": node, "type": prompt.get(node, {}).get("class_type", "?"), "start": before,
                          "peak": rss, "end": rss, "t0": t, "t1": t, "progress": (value, top)}
            order.append(node)
        row = rows[node]
        row["peak"], row["end"], row["t1"], row["progress"] = max(row["peak"], rss), rss, t, (value, top)
    return [rows[n] for n in order]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--base-dir", required=True)
    parser.add_argument("--video", required=True, help="the long shot (kept outside the repository)")
    parser.add_argument("--internal-size", type=int, default=64)
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument("--max-minutes", type=float, default=80.0)
    parser.add_argument("--json", help="write the samples and the table here")
    args = parser.parse_args()
    base, video = Path(args.base_dir), Path(args.video).resolve()
    (base / "input").mkdir(parents=True, exist_ok=True)
    link = base / "input" / video.name
    if not link.exists():
        link.symlink_to(video)
    width, height, frames = video_size(video)
    keyframes = write_keyframe(base / "input", width, height)
    proc, url, log = start_server(args.comfyui, args.python, base)
    report = Report()
    samples, status, prompt = [], "not run", {}
    try:
        check_server(report, url, log)
        prompt = graph_prompt(get_json(url, "/object_info"), video.name, keyframes, args.internal_size)
        events = Events(url)
        events.start()
        events.ready.wait(30)
        time.sleep(2)  # the server settles after start-up (its first RSS reading is the start)
        started = time.time()
        prompt_id = queue(url, prompt)
        print(f"queued {prompt_id}: {video.name}, {frames} frames {width}x{height}, internal size "
              f"{args.internal_size}; server pid {proc.pid}", flush=True)
        interrupted, last_print, entry = False, 0.0, None
        while True:
            now = time.time() - started
            rss, hwm = rss_mib(proc.pid)
            samples.append((round(now, 1), round(rss, 1), round(hwm, 1), events.node, events.value, events.max))
            if now - last_print >= 30:
                node = events.node
                print(f"  {now:6.0f} s  RSS {rss:7.0f} MiB  node {node} "
                      f"({prompt.get(node, {}).get('class_type', '-')}) {events.value}/{events.max}", flush=True)
                last_print = now
            history = get_json(url, f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                break
            if not interrupted and now > args.max_minutes * 60:
                print(f"  past {args.max_minutes} min: interrupting", flush=True)
                post_json(url, "/interrupt", {})
                interrupted = True
            time.sleep(args.sample_s)
        for _ in range(5):  # the end: RSS after the run, once the server has let go
            time.sleep(args.sample_s)
            rss, hwm = rss_mib(proc.pid)
            samples.append((round(time.time() - started, 1), round(rss, 1), round(hwm, 1), None, 0, 0))
        events.stop = True
        status = entry["status"]["status_str"]
        errors = [m.get("exception_message") for m in messages(entry, "execution_error")]
        report.check("the whole graph ran", status == "success" and not interrupted,
                     f"{status} in {time.time() - started:.0f} s{' (interrupted at the time limit)' if interrupted else ''} "
                     f"{errors or ''}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    table = stage_table(samples, prompt)
    rss_values = [s[1] for s in samples]
    print(f"\nserver RSS (MiB), {frames} frames {width}x{height}, internal size {args.internal_size}, "
          f"sampled every {args.sample_s:g} s from /proc/<pid>/status")
    if rss_values:
        print(f"start {rss_values[0]:.0f}, peak {max(rss_values):.0f} (VmHWM {samples[-1][2]:.0f}), end {rss_values[-1]:.0f}")
    print(f"{'node':>5} {'type':<20} {'start':>7} {'peak':>7} {'end':>7} {'seconds':>8} progress")
    for row in table:
        print(f"{row['node']:>5} {row['type']:<20} {row['start']:7.0f} {row['peak']:7.0f} {row['end']:7.0f} "
              f"{row['t1'] - row['t0']:8.0f} {row['progress'][0]}/{row['progress'][1]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": frames, "size": [width, height], "status": status,
                                               "internal_size": args.internal_size, "table": table,
                                               "samples": samples}, indent=0))
    print(f"{'FAILED' if report.failed else 'all passed'}; server log {log}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests" / "e2e_comfyui"))
    sys.exit(main())
