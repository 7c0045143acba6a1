"""Headless Chromium for the viewer tests (Playwright driving the system's browser).

No browser is downloaded: the tests use Debian's ``chromium`` (or $NEHMAP_CHROMIUM) and
skip, saying why, when it or Playwright for Python is missing. WebGL runs on the CPU
(SwiftShader), as on a machine without a GPU.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--no-sandbox",
]


def chromium_path() -> str | None:
    """The Chromium executable, or None."""
    explicit = os.environ.get("NEHMAP_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The Chromium path; skips the test with the reason when it cannot run."""
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium found (install Debian's 'chromium' package, as make test does as "
            "root, or set NEHMAP_CHROMIUM): browser tests skipped"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    return path


class Page:
    """A loaded page, the console errors and the requests that left the file."""

    def __init__(self, page, errors: list[str], requests: list[str]) -> None:
        self.page, self.errors, self.requests = page, errors, requests


@contextmanager
def open_page(path: Path, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """Open a local HTML file in headless Chromium; collect errors and outside requests."""
    from playwright.sync_api import sync_playwright

    executable = require_browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(("file:", "data:", "blob:"))
                    else requests.append(r.url)
                ),
            )
            page.goto(Path(path).resolve().as_uri())
            yield Page(page, errors, requests)
        finally:
            browser.close()
