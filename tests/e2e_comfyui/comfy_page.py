"""The browser side that several check_*_in_comfyui.py scripts share: a page on ComfyUI in one renderer."""
import json
from contextlib import asynccontextmanager

from check_player_in_comfyui import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, settle

JS_RENDERER = """async (vue) => { const s = window.app.extensionManager.setting;
  await s.set('Comfy.VueNodes.Enabled', vue); await s.set('Comfy.Minimap.Visible', false); }"""


async def dismiss_dialogs(page):
    """Close what the frontend may pop up over the canvas (Escape, a few tries at most)."""
    for _ in range(5):
        if not await page.locator(".p-dialog-mask").count():
            return
        await page.keyboard.press("Escape")
        await settle(page, 500)


@asynccontextmanager
async def comfy_page(p, url, report, tag, vue, failed_shot):
    """A headless Chromium page on ComfyUI's frontend, with the Vue renderer on or off, the minimap
    hidden and the frontend's pop-ups closed. On an error, a screenshot goes to ``failed_shot``.
    At the end comes the check that the extension wrote no console error or warning, and the
    browser closes."""
    browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = await browser.new_page(viewport=VIEWPORT)
    console = []
    page.on("console", lambda m: console.append((m.type, m.text, (m.location or {}).get("url", ""))))
    page.on("pageerror", lambda e: console.append(("pageerror", str(e), "")))
    try:
        await page.goto(url + "/", wait_until="networkidle")
        await page.wait_for_function("() => window.app?.graph && window.app.extensionManager?.setting", timeout=60000)
        await dismiss_dialogs(page)
        await page.evaluate(JS_RENDERER, vue)
        yield page
    except Exception:
        await page.screenshot(path=str(failed_shot))
        raise
    finally:
        ours = [c for c in console if c[0] in ("error", "pageerror", "warning")
                and ("memvos" in c[1].lower() or "memvos" in c[2].lower()) and "404" not in c[1]]
        report.check(tag + "no console errors or warnings from the extension", not ours, json.dumps(ours)[:400])
        await browser.close()
