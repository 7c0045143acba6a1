"""The viewer and the report in a real headless Chromium (skipped when none is found).

Checks: no console errors, nothing fetched from outside the file, the canvas drew
non-background pixels, every layer toggles (the canvas changes when it is switched), the
case picker loads every case, and no table is wider than a 1280 px page.
Screenshots are left in the test's temporary folder for a look.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from browser import open_page, require_browser
from nehmap.cli import main
from viewer_data import write_case

READY = "window.nehmapViewer && (window.nehmapViewer.ready || window.nehmapViewer.errors.length)"


def _canvas_pixels(page) -> np.ndarray:
    from PIL import Image

    png = page.locator("#nehmap-viewer canvas").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _wait_ready(b) -> None:
    b.page.wait_for_function(READY, timeout=120_000)
    assert b.page.evaluate("window.nehmapViewer.errors") == []
    b.page.wait_for_timeout(300)


def _check_every_layer_toggles(b, shot: Path) -> None:
    page = b.page
    base = _canvas_pixels(page)
    page.locator("#nehmap-viewer").screenshot(path=str(shot))
    assert np.count_nonzero(base.sum(axis=2) > 30) > 1000, "the canvas drew nothing"
    n = page.evaluate("window.nehmapViewer.nv.volumes.length")
    boxes = page.locator("#nehmap-viewer input[data-toggle]")
    assert boxes.count() == n > 0
    for i in range(n):
        box = boxes.nth(i)
        before = _canvas_pixels(page)
        box.click()
        page.wait_for_timeout(150)
        after = _canvas_pixels(page)
        name = page.locator("#nehmap-viewer .nv-layer label").nth(i).inner_text()
        assert np.abs(after - before).sum(axis=2).max() > 40, f"layer {name!r} did not toggle"
        box.click()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> Path:
    require_browser()
    root = tmp_path_factory.mktemp("view")
    folder = write_case(root)
    out = root / "viewer.html"
    assert main(["view", str(folder), "-o", str(out), "--quiet"]) == 0
    return out


def test_standalone_viewer_draws_and_every_layer_toggles(standalone: Path) -> None:
    with open_page(standalone) as b:
        _wait_ready(b)
        _check_every_layer_toggles(b, standalone.with_suffix(".png"))
        readout = b.page.locator("#nehmap-viewer .nv-readout tbody tr")
        assert readout.count() == 8  # a value for every layer
        texts = readout.all_inner_texts()
        assert any("NEH" in t for t in texts)  # the crosshair opens on the NEH
        b.page.locator('#nehmap-viewer button[data-view="render"]').click()
        b.page.wait_for_timeout(300)
        assert np.count_nonzero(_canvas_pixels(b.page).sum(axis=2) > 30) > 1000
        assert b.errors == [] and b.requests == []


def test_threshold_hides_the_probability_below_it(standalone: Path) -> None:
    with open_page(standalone) as b:
        _wait_ready(b)
        page = b.page
        for i in range(page.locator("#nehmap-viewer input[data-toggle]").count()):
            name = page.locator("#nehmap-viewer .nv-layer label").nth(i).inner_text()
            if "probability" not in name and "T1c" not in name:
                page.locator("#nehmap-viewer input[data-toggle]").nth(i).uncheck()
        low = _canvas_pixels(page)
        page.locator("#nehmap-viewer .nv-threshold").fill("0.9")
        page.wait_for_timeout(200)
        high = _canvas_pixels(page)
        assert np.abs(high - low).sum(axis=2).max() > 40
        assert b.errors == []


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    require_browser()
    sys.path.insert(0, str(Path(__file__).parent))
    import test_report

    return test_report.study.__wrapped__(tmp_path_factory)["path"]


def test_report_viewer_shows_every_case_and_tables_fit_1280px(report: Path) -> None:
    with open_page(report, width=1280) as b:
        _wait_ready(b)
        page = b.page
        options = page.locator("#nehmap-viewer select.nv-case option").all_inner_texts()
        assert len(options) == 4 and "Figure 4" in options[-1]
        _check_every_layer_toggles(b, report.with_name("report-viewer.png"))
        page.select_option("#nehmap-viewer select.nv-case", "3")
        page.wait_for_function("window.nehmapViewer.caseIndex === 3")
        page.wait_for_timeout(500)
        names = page.locator("#nehmap-viewer .nv-layer label").all_inner_texts()
        assert [n.strip() for n in names] == ["recurrence T1c", "recurrence labels", "warped pNEH"]
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        boxes = page.evaluate(
            "Array.from(document.querySelectorAll('table')).map(t => "
            "[t.dataset.source || t.className, t.getBoundingClientRect().right])"
        )
        wide = [(name, right) for name, right in boxes if right > 1280]
        assert not wide, f"tables wider than the page: {wide}"
        page.screenshot(path=str(report.with_name("report.png")), full_page=True)
        assert b.errors == [] and b.requests == []


def test_report_reads_without_javascript(report: Path) -> None:
    from playwright.sync_api import sync_playwright

    from browser import FLAGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_browser(), args=FLAGS)
        page = browser.new_context(java_script_enabled=False).new_page()
        page.goto(report.resolve().as_uri())
        assert page.locator("#nehmap-viewer .nv-nojs").is_visible()
        assert page.locator("#nehmap-viewer .nv-ui").is_hidden()
        assert page.locator("figure img").count() >= 2
        browser.close()
