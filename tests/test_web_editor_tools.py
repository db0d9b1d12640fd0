"""The keyframe editor's tool registry (web/keyframes/tools/index.js) in headless Chromium against
the stub frontend: it lists every module of web/keyframes/tools/ under the module's own name, each
tool has its button (in the registry's order) and a key of its own that selects it. The stub
imports every module of web/ as ComfyUI does, so a module that fails to load fails this test.
"""
from pathlib import Path

from web_stub_server import StubServer

TOOLS_DIR = Path(__file__).resolve().parents[1] / "web" / "keyframes" / "tools"
EDITOR = "stub.keyframes.memvosKeyframes.editor"

TOOLS_JS = """async () => {
  const base = "/extensions/ComfyUI-MemVOS/keyframes";
  const { TOOLS } = await import(base + "/tools/index.js");
  const { actionFor } = await import(base + "/keys.js");
  return TOOLS.map((tool) => {
    const key = Object.keys(tool.shortcuts[0].keys)[0];
    return { name: tool.name, key, action: actionFor({ key }),
             keys: tool.shortcuts.flatMap((s) => Object.keys(s.keys)) };
  });
}"""


def test_the_registry_lists_every_tool_module_each_with_its_button_and_key(browser, tmp_path):
    with StubServer(dirs={"temp": tmp_path, "input": tmp_path}) as server:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "?fresh=1")
        page.wait_for_function("window.stubReady || window.stubError")
        assert page.evaluate("window.stubError || null") is None, "every module under web/ imports"

        tools = page.evaluate(TOOLS_JS)
        names = [tool["name"] for tool in tools]
        assert sorted(names) == sorted(p.stem for p in TOOLS_DIR.glob("*.js") if p.name != "index.js")
        keys = [key for tool in tools for key in tool["keys"]]
        assert len(keys) == len(set(keys)), f"two tools claim one key: {keys}"
        assert all(tool["action"] == ["tool", tool["name"]] for tool in tools), tools

        page.evaluate(f"{EDITOR}.open()")
        buttons = page.locator(".memvos-editor .memvos-ed-tool")
        assert buttons.evaluate_all("bs => bs.map((b) => b.dataset.tool)") == names
        for tool in reversed(tools):  # the last first: the default tool (brush) is not the one tested first
            page.keyboard.press(tool["key"])
            assert page.evaluate(f"{EDITOR}.state.tool") == tool["name"]
            assert page.locator(".memvos-ed-tool.active").evaluate_all("bs => bs.map((b) => b.dataset.tool)") == [tool["name"]]
        page.close()
    assert errors == []
