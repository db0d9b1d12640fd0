"""Where the browser tests find Chromium, and what they say when they cannot.

The browser tests drive Debian's Chromium (package ``chromium``) with the Python package
playwright; playwright's own browser download is never used. ``MEMVOS_CHROMIUM`` picks the
binary (a path), or turns the browser tests off (``none``); ``MEMVOS_REQUIRE_BROWSER=1`` (set
by .ci/run) makes a missing browser a failure instead of a skip.
"""
import os
import shutil
from dataclasses import dataclass
from typing import Optional

CHROMIUM_ENV = "MEMVOS_CHROMIUM"
REQUIRE_ENV = "MEMVOS_REQUIRE_BROWSER"
CANDIDATES = ("chromium", "chromium-browser")  # looked up on PATH (Debian: /usr/bin/chromium)
OFF_VALUES = ("", "none", "off", "0", "no")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOW_TO_ENABLE = ("to run them: install Chromium (as root: apt-get update && apt-get install -y chromium; "
                 "scripts/test.sh does this when run as root) and the Python package playwright "
                 "(pip install -r requirements-test.txt), or point MEMVOS_CHROMIUM at a Chromium binary")


@dataclass(frozen=True)
class Found:
    path: Optional[str]
    reason: str  # why there is no browser (empty when there is one)


def browser_required():
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in OFF_VALUES


def find_chromium():
    """The Chromium binary the browser tests use, or why there is none."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return Found(None, f"browser test: the Python package playwright is not installed; {HOW_TO_ENABLE}")
    chosen = os.environ.get(CHROMIUM_ENV)
    if chosen is not None:
        if chosen.strip().lower() in OFF_VALUES:
            return Found(None, f"browser test: turned off by {CHROMIUM_ENV}={chosen!r}; unset it and {HOW_TO_ENABLE}")
        path = shutil.which(chosen)
        if path is None:
            return Found(None, f"browser test: {CHROMIUM_ENV}={chosen!r} is not an executable file; {HOW_TO_ENABLE}")
        return Found(path, "")
    for candidate in CANDIDATES:
        path = shutil.which(candidate)
        if path is not None:
            return Found(path, "")
    return Found(None, f"browser test: Chromium was not found ({', '.join(CANDIDATES)}); {HOW_TO_ENABLE}")
