"""The viewer's HTML: NiiVue, the controls and the cases, in one self-contained block.

NiiVue (https://github.com/niivue/niivue, BSD 2-Clause, version :data:`NIIVUE_VERSION`)
is vendored as its minified browser bundle in ``nehmap/report/vendor/`` beside its
licence, and embedded inline: the page fetches nothing and works offline. Without
JavaScript or WebGL2 the block shows a sentence instead, and it is hidden in print; the
report's static figures carry the same cases.
"""

from __future__ import annotations

import json
from importlib import resources

from nehmap.report.html import esc, page
from nehmap.report.viewer import DATA_BUDGET_BYTES, ViewerCase, encode_cases

NIIVUE_VERSION = "0.69.0"
"""The vendored NiiVue release (npm ``@niivue/niivue``)."""

NIIVUE_FILE = f"niivue-{NIIVUE_VERSION}.umd.min.js"
NIIVUE_SHA256 = "47b896b77ec4a5be3ef1949c33ad393b6f45629921f326c279000bcf51bdb4af"
"""SHA-256 of ``dist/niivue.umd.js`` in the npm package ``@niivue/niivue@0.69.0``."""
LICENCE_FILE = "NIIVUE-LICENSE.txt"

VIEWS = (("multi", "All views"), ("axial", "Axial"), ("coronal", "Coronal"),
         ("sagittal", "Sagittal"), ("render", "3D"))  # fmt: skip


def _asset(folder: str, name: str) -> str:
    return resources.files("nehmap.report").joinpath(folder, name).read_text(encoding="utf-8")


def niivue_source() -> str:
    """The vendored NiiVue bundle, with its licence as a leading comment."""
    licence = _asset("vendor", LICENCE_FILE).replace("*/", "* /")
    return f"/*\n{licence}*/\n{_asset('vendor', NIIVUE_FILE)}"


def _script(text: str) -> str:
    """An inline script; ``</script`` inside it is broken up so the page stays valid."""
    return "<script>" + text.replace("</script", "<\\/script") + "</script>"


def data_json(encoded: list[dict]) -> str:
    """The cases as JSON safe inside ``<script type="application/json">``."""
    text = json.dumps(encoded, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def viewer_block(encoded: list[dict]) -> str:
    """The viewer's HTML (controls, canvas, data and scripts) for encoded cases.

    Parameters
    ----------
    encoded : list[dict]
        Cases from :func:`nehmap.report.viewer.encode_cases`.
    """
    buttons = "".join(
        f'<button type="button" data-view="{v}"{" class=nv-active" if v == "multi" else ""}>'
        f"{esc(label)}</button>"
        for v, label in VIEWS
    )
    controls = (
        '<div class="nv-bar"><label>Case <select class="nv-case"></select></label>'
        f"<span>{buttons}</span>"
        '<label>NEH threshold <input class="nv-threshold" type="range" min="0" max="1" '
        'step="0.01" value="0.5"> <span class="nv-threshold-value">0.50</span></label></div>'
    )
    side = (
        '<div class="nv-side"><p class="nv-title"></p><p class="nv-notes"></p>'
        "<b>Layers</b> (tick to show; slider: opacity)"
        '<div class="nv-layers"></div>'
        '<table class="nv-readout"><thead><tr><th>layer</th><th>value at the crosshair</th>'
        '</tr></thead><tbody></tbody></table><p class="nv-position"></p></div>'
    )
    help_text = (
        "Click or drag in a view to move the crosshair; scroll to change the slice; drag "
        "in the 3D view to rotate it. Values are read out in the layers' units (the fused "
        "NEH probability 0-1; images quantised to 256 levels)."
    )
    return (
        '<div class="nv-viewer" id="nehmap-viewer">'
        '<p class="nv-nojs note">The interactive viewer needs JavaScript and WebGL2; '
        "the static figures show the same cases.</p>"
        f'<div class="nv-ui">{controls}<div class="nv-main"><div class="nv-canvas-box">'
        f'<canvas></canvas></div>{side}</div><p class="source">{esc(help_text)} '
        f"Viewer: NiiVue {esc(NIIVUE_VERSION)} (BSD 2-Clause).</p></div></div>"
        f"<style>{_asset('assets', 'viewer.css')}</style>"
        f'<script type="application/json" id="nehmap-viewer-data">{data_json(encoded)}</script>'
        f"{_script(niivue_source())}{_script(_asset('assets', 'viewer.js'))}"
    )


def viewer_html(cases: list[ViewerCase], budget_bytes: int = DATA_BUDGET_BYTES) -> str:
    """The viewer block for ``cases``, encoded within ``budget_bytes`` (see
    :func:`nehmap.report.viewer.encode_cases`)."""
    return viewer_block(encode_cases(cases, budget_bytes))


def standalone_page(
    cases: list[ViewerCase], title: str, budget_bytes: int = DATA_BUDGET_BYTES
) -> str:
    """A whole HTML page holding only the viewer for ``cases`` (``nehmap view``)."""
    body = (
        f"<header><h1>{esc(title)}</h1>"
        '<p class="subtitle">nehmap viewer: the images, each model\'s labels, the fused NEH '
        "probability, the two-level map and the uncertainty</p></header>"
        f"{viewer_html(cases, budget_bytes)}"
    )
    return page(title, body)
