"""The study's HTML report: self-contained, its tables equal to the CSVs, never failing on
missing parts, with a methods text that names every parameter of the configuration.

A fake study output (hand-made CSVs in the documented columns, tiny NIfTI volumes written
with nibabel) is rendered once per module; the report is parsed back with the standard
library's HTML parser.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from conftest import save
from nehmap.report import format_mean_sd, format_number, format_p, paper, write_report
from nehmap.report.examples import find_pneh_files, pick_examples, radiological
from nehmap.report.formatting import model_label
from nehmap.study.config import StudyConfig

SHAPE = (24, 24, 12)
MODELS = ["paunet", "unetrpp", "unetrpp-consensus"]
CASES = ["CASE-001", "CASE-002", "CASE-003"]
ODD_ID = "<odd&id>"
EVIL = "<script>alert(1)</script>"


# ----------------------------------------------------------------------------- parsing


class _Tables(HTMLParser):
    """Collects every ``<table>`` (attributes, ``data-col`` headers, cell texts) and ``<img>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"attrs": a, "columns": [], "rows": []})
        elif tag == "th" and self.tables:
            self.tables[-1]["columns"].append(a.get("data-col"))
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row:
            self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> _Tables:
    parser = _Tables()
    parser.feed(text)
    return parser


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def half_unit(text: str) -> float:
    """Half a unit in the last printed digit of a number ("0.0123" -> 0.00005)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def matches(cell: str, value: object, column: str) -> bool:
    """Does a printed cell show the CSV value, within the printed precision?"""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return cell == "–"
    if isinstance(value, bool | np.bool_):
        return cell == str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        if (column == "p" or column.startswith("p_")) and cell == "< 0.0001":
            return float(value) < 1e-4
        if math.isinf(float(value)):
            return cell in ("∞", "−∞")
        number = float(cell.replace("−", "-"))
        return abs(number - float(value)) <= half_unit(cell) * (1 + 1e-9) + 1e-12
    text = str(value)
    return cell in (text, model_label(text)) or cell.lower() == text.lower()


def mean_sd(cell: str) -> tuple[float, float | None]:
    mean, _, sd = cell.partition(" ± ")
    return float(mean), float(sd) if sd else None


# ----------------------------------------------------------------------------- fake study


def _blob_labels() -> np.ndarray:
    """A tumour: necrosis inside an enhancing ring, NEH beside it, edema around both."""
    x, y, z = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    r = np.sqrt((x - 12) ** 2 + (y - 12) ** 2 + ((z - 6) * 2.0) ** 2)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[r < 9] = 2
    labels[(r < 6) & (x > 12)] = 3
    labels[r < 5] = 4
    labels[r < 2.5] = 1
    return labels


def _write_segment_case(root: Path, data: Path, case: str, shift: int, t1c: bool) -> None:
    folder = root / case
    labels = np.roll(_blob_labels(), shift, axis=0)
    other = labels.copy()
    other[(labels == 2) & (np.roll(labels, 1, axis=0) == 3)] = 3
    probability = ((labels == 3) * 0.6 + (other == 3) * 0.4).astype(np.float32)
    levels = np.where(probability >= 0.5, 2, np.where(probability >= 0.2, 1, 0)).astype(np.uint8)
    save(folder / f"{case}_seg-paunet.nii.gz", labels)
    save(folder / f"{case}_seg-unetrpp.nii.gz", other)
    save(folder / f"{case}_seg-unetrpp-consensus.nii.gz", levels)
    save(folder / f"{case}_neh-prob.nii.gz", probability)
    save(folder / f"{case}_neh-levels.nii.gz", levels)
    image = data / case / f"{case}_t1c.nii.gz"
    if t1c:
        rng = np.random.default_rng(shift + 3)
        save(image, (rng.uniform(50, 100, SHAPE) + 80 * (labels == 4)).astype(np.float32))
    record = {
        "case": case,
        "inputs": {"t1c": str(image), "flair": str(data / case / "missing_flair.nii.gz")},
        "label_schemes": {
            "paunet": "nehmap",
            "unetrpp": "nehmap",
            "unetrpp-consensus": "neh-consensus",
        },
    }
    (folder / f"{case}_nehmap.json").write_text(json.dumps(record))


def _write_recurrence(work: Path, data: Path) -> None:
    """Warped pNEH in the subject's folder; the recurrence scan's segmentation and T1c."""
    labels = _blob_labels()
    pneh = (np.roll(labels, 2, axis=1) == 3).astype(np.uint8)
    save(work / "recurrence" / "SUBJ-01" / "SUBJ-01_pneh.nii.gz", pneh)
    save(
        work / "recurrence" / "SUBJ-01" / "SUBJ-01_preop-core.nii.gz",
        (labels == 4).astype(np.uint8),
    )
    scan = work / "segment" / "recurrence" / "SUBJ-01_2"
    save(scan / "SUBJ-01_2_seg-unetrpp.nii.gz", labels)
    t1c = data / "SUBJ-01_2_t1ce.nii.gz"
    save(t1c, (50 + 60 * (labels == 4)).astype(np.float32))
    (scan / "SUBJ-01_2_nehmap.json").write_text(json.dumps({"inputs": {"t1c": str(t1c)}}))


RECURRENCE_METRICS = (
    ("mean_edge_distance", "MeanEdgeDistance", "mm", "less"),
    ("fraction_inside", "FractionInside", "fraction", "greater"),
    ("volume_containment", "VolumeContainment", "mm3", "greater"),
)


def _recurrence_tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Tables in the columns of nehmap's recurrence analysis (one subject not included)."""
    rows = []
    for i in range(1, 7):
        for metric, paper_name, unit, _ in RECURRENCE_METRICS:
            value = rng.uniform(0.1, 0.6) if unit == "fraction" else rng.uniform(2, 40)
            ratio = rng.uniform(0.5, 2.0)
            rows.append(
                {
                    "case": f"SUBJ-{i:02d}",
                    "preop_case": f"SUBJ-{i:02d}_0",
                    "recurrence_case": f"SUBJ-{i:02d}_2",
                    "metric": metric,
                    "paper_metric": paper_name,
                    "unit": unit,
                    "value": value,
                    "chance_expected": value / ratio,
                    "chance_sd": 0.1,
                    "ratio": ratio,
                    "chance_rank": rng.uniform(),
                    "p_spatial": rng.uniform(),
                    "agreement": "less" if unit == "mm" else "greater",
                    "included": i != 6,
                }
            )
    cases = pd.DataFrame(rows)
    kept = cases[cases["included"]]
    summary = []
    for metric, paper_name, unit, _ in RECURRENCE_METRICS:
        sub = kept[kept["metric"] == metric]
        for scale, column, scale_unit in (("raw", "value", unit), ("ratio", "ratio", "ratio")):
            summary.append(
                {
                    "metric": metric,
                    "paper_metric": paper_name,
                    "scale": scale,
                    "unit": scale_unit,
                    "mean": sub[column].mean(),
                    "sd": sub[column].std(ddof=1),
                    "median": sub[column].median(),
                    "n": len(sub),
                }
            )
    tests = []
    for metric, paper_name, _, agreement in RECURRENCE_METRICS:
        for test, alternative, p in (
            ("paper", "greater", 0.00001 if metric == "mean_edge_distance" else 0.031),
            ("chance_ratio", agreement, 0.2),
            ("chance_rank", "greater", 0.04),
        ):
            tests.append(
                {
                    "metric": metric,
                    "paper_metric": paper_name,
                    "test": test,
                    "scale": "ratio",
                    "baseline": 1.0,
                    "alternative": alternative,
                    "observed_mean": 1.3,
                    "observed_sd": 0.4,
                    "null_mean": 1.0,
                    "p_greater": p,
                    "p_less": 1 - p,
                    "p_two_sided": min(1.0, 2 * p),
                    "p_value": p,
                    "n": 5,
                    "n_omitted": 0,
                    "method": "exact",
                    "note": "",
                }
            )
    return {
        "recurrence_cases": cases,
        "recurrence_summary": pd.DataFrame(summary),
        "recurrence_tests": pd.DataFrame(tests),
    }


def _tables(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    agreement = pd.DataFrame(
        [
            {
                "region": r,
                "metric": m,
                "mean": rng.uniform(0.2, 0.9),
                "sd": rng.uniform(0.01, 0.2),
                "median": rng.uniform(0.2, 0.9),
                "n": 3,
            }
            for r in ("ET", "TC", "WT", "NEH")
            for m in ("dice", "jaccard", "hd95", "surface_dice")
        ]
    )
    table1 = pd.DataFrame(
        {
            "metric": ["Dice", "Hausdorff95", "Jaccard", "Surface Dice"],
            "ET": ["0.83 ± 0.15", "3.12 ± 3.70", "0.73 ± 0.18", "0.85 ± 0.15"],
            "TC": ["0.78 ± 0.19", "12.43 ± 17.82", "0.68 ± 0.22", "0.66 ± 0.22"],
            "WT": ["0.90 ± 0.07", "7.47 ± 13.12", "0.82 ± 0.10", "n/a"],
        }
    )
    table2 = pd.DataFrame(
        {
            "metric": ["Dice", "Hausdorff95", "Jaccard", "Surface Dice"],
            "NEH": ["0.29 ± 0.19", "25.63 ± 16.87", "0.18 ± 0.14", "0.40 ± 0.20"],
        }
    )
    intensity_cases = pd.DataFrame(
        [
            {
                "case": c,
                "model": m,
                "modality": mod,
                "label": lab,
                "label_name": name,
                "mean": rng.uniform(100, 400),
                "n_voxels": n,
            }
            for c, n in zip(CASES, (40, 90, 60), strict=True)
            for m in ("paunet", "unetrpp")
            for mod in ("flair", "t1c")
            for lab, name in ((2, "ED"), (3, "NEH"))
        ]
    )
    table3 = pd.DataFrame(
        [
            {
                "model": m,
                "modality": mod,
                "label_name": name,
                "mean_of_means": rng.uniform(300, 600),
                "sd": rng.uniform(40, 110),
                "n_cases": 3,
            }
            for m in ("paunet", "unetrpp")
            for mod in ("flair", "t1c", "t1", "t2")
            for name in ("ED", "NEH")
        ]
    )
    table4 = pd.DataFrame(
        [
            {
                "model": m,
                "modality": mod,
                "n_cases": 3,
                "estimate": est,
                "se": 3.04,
                "z": est / 3.04,
                "p_z": p,
                "F": (est / 3.04) ** 2,
                "df_num": 1.0,
                "df_den": 2.0,
                "p": p,
                "converged": True,
                "warnings": "",
                "note": "NEH - ED",
            }
            for m in ("paunet", "unetrpp")
            for mod, est, p in (
                ("flair", -26.55, 3.2e-9),
                ("t1c", 37.33, 0.0021),
                ("t2", -2.91, 0.54),
            )
        ]
    )
    rcbv_rows = []
    for c in CASES:
        for m in ("paunet", "unetrpp"):
            for comp, base in (("ET", 3.0), ("NEH", 2.0), ("ED", 1.2), ("NC", 0.7)):
                rcbv_rows.append(
                    {
                        "case": c,
                        "model": m,
                        "compartment": comp,
                        "mean": base + rng.normal(0, 0.2),
                        "median": base,
                        "n_voxels": 50,
                    }
                )
        for m in ("unetrpp-consensus", "levels"):
            for comp, base in (("NEH-low", 1.6), ("NEH-high", 2.1), ("NEH-low+high", 1.8)):
                rcbv_rows.append(
                    {
                        "case": c,
                        "model": m,
                        "compartment": comp,
                        "mean": base + rng.normal(0, 0.2),
                        "median": base,
                        "n_voxels": 30,
                    }
                )
    rcbv_cases = pd.DataFrame(rcbv_rows)
    rcbv_summary = (
        rcbv_cases.groupby(["model", "compartment"])["mean"]
        .agg(["mean", "std", "median", "count"])
        .reset_index()
        .rename(
            columns={
                "mean": "mean_of_means",
                "std": "sd",
                "median": "median_of_means",
                "count": "n_cases",
            }
        )
    )
    rcbv_tests = pd.DataFrame(
        [
            {
                "model": "paunet",
                "test": "rm_anova",
                "a": "ET,NEH,ED",
                "b": "",
                "statistic": 44.2,
                "df": "2,4",
                "p": 5e-6,
                "p_adjusted": 0.0013,
                "n": 3,
                "note": "Greenhouse-Geisser",
            },
            {
                "model": "paunet",
                "test": "ordered_one_sided",
                "a": "ET",
                "b": "NEH",
                "statistic": 5.46,
                "df": "2",
                "p": 0.0047,
                "p_adjusted": 0.0094,
                "n": 3,
                "note": "H1",
            },
            {
                "model": "paunet",
                "test": "ordered_one_sided",
                "a": "NEH",
                "b": "ED",
                "statistic": 7.43,
                "df": "2",
                "p": 0.00003,
                "p_adjusted": 0.00006,
                "n": 3,
                "note": "H1",
            },
            {
                "model": "levels",
                "test": "paired_t",
                "a": "NEH-high",
                "b": "NEH-low",
                "statistic": 3.69,
                "df": "2",
                "p": 0.0661,
                "p_adjusted": 0.0661,
                "n": 3,
                "note": "consensus levels",
            },
            {
                "model": "unetrpp-consensus",
                "test": "rm_anova",
                "a": "ET,NEH,ED",
                "b": "",
                "statistic": np.nan,
                "df": "",
                "p": np.nan,
                "p_adjusted": np.nan,
                "n": 0,
                "note": "fewer than 2 cases with ET, NEH and ED all present",
            },
        ]
    )
    rims_cases = pd.DataFrame(
        [
            {
                "case": c,
                "region": r,
                "mean": base + rng.normal(0, 0.1),
                "median": base,
                "n_voxels": 80,
            }
            for c in CASES
            for r, base in (("rim_1.5mm", 1.7), ("rim_3mm", 1.5), ("NEH", 2.0))
        ]
    )
    rims_summary = (
        rims_cases.groupby("region")["mean"]
        .agg(["mean", "std", "count"])
        .reset_index()
        .rename(columns={"mean": "mean_of_means", "std": "sd", "count": "n_cases"})
    )
    rims_tests = pd.DataFrame(
        [
            {
                "test": t,
                "a": "NEH",
                "b": rim,
                "statistic": 4.8,
                "df": "2",
                "p": p,
                "p_adjusted": 2 * p,
                "n": 3,
                "note": "paired, Holm",
            }
            for t in ("paired_t", "paired_t_greater")
            for rim, p in (("rim_1.5mm", 0.0188), ("rim_3mm", 0.00002))
        ]
    )
    excluded = pd.DataFrame(
        [
            {"cohort": "perfusion", "case": ODD_ID, "reason": "H1/H2: no rCBV map"},
            {"cohort": "recurrence", "case": "SUBJ-09_1", "reason": "early post-operative scan"},
        ]
    )
    errors = pd.DataFrame(
        [
            {
                "stage": "segment perfusion",
                "case": "perfusion/CASE-404",
                "message": f"bad file {EVIL}",
            }
        ]
    )
    return {
        "agreement_summary": agreement,
        "table1_agreement_regions": table1,
        "table2_agreement_neh": table2,
        "intensity_cases": intensity_cases,
        "table3_intensity": table3,
        "table4_mixed_models": table4,
        "rcbv_cases": rcbv_cases,
        "rcbv_summary": rcbv_summary,
        "rcbv_tests": rcbv_tests,
        "rims_cases": rims_cases,
        "rims_summary": rims_summary,
        "rims_tests": rims_tests,
        **_recurrence_tables(rng),
        "excluded": excluded,
        "errors": errors,
    }


def _config(root: Path, cohorts: dict) -> StudyConfig:
    return StudyConfig.from_dict(
        {
            "study": {"name": "Report test <study>", "seed": 7},
            "cohorts": cohorts,
            "segment": {"models": MODELS, "sigma_mm": 1.75, "threshold": 0.45, "low": 0.15},
            "agreement": {"tolerance_mm": 3.5, "method": "surface_elements"},
            "rcbv": {"vessel_percentile": 98.5},
            "rims": {"rims_mm": [1.5, 3.0], "neh_model": "fused"},
            "recurrence": {"preset": "affine", "null_n": 123, "n_permutations": 4321},
        },
        base_dir=root,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("study")
    out, data = root / "out", root / "data"
    work = out / "work"
    for i, case in enumerate(CASES):
        _write_segment_case(work / "segment" / "perfusion", data, case, i - 1, t1c=i != 2)
    _write_recurrence(work, data)
    tables = _tables(np.random.default_rng(0))
    (out / "tables").mkdir(parents=True)
    for name, frame in tables.items():
        frame.to_csv(out / "tables" / f"{name}.csv", index=False)
    config = _config(root, {"perfusion": {"path": "data"}, "recurrence": {"path": "rhuh"}})
    record = {
        "study": config.name,
        "config": config.to_dict(),
        "cohorts": {"perfusion": 4, "recurrence": 6},
    }
    (out / "study.json").write_text(json.dumps(record, default=str))
    path = write_report(config, out, work)
    text = path.read_text(encoding="utf-8")
    return {"path": path, "out": out, "text": text, "parsed": parse(text), "config": config}


# ----------------------------------------------------------------------------- tests


def test_report_is_written_to_the_output_folder(study: dict) -> None:
    assert study["path"] == study["out"] / "report.html"
    assert not list(study["out"].glob(".report.tmp-*"))
    assert study["text"].startswith("<!DOCTYPE html>")


def test_report_is_self_contained(study: dict) -> None:
    text = study["text"].lower()
    # the only scripts are the viewer's, inline: its data, NiiVue and the controls
    tags = re.findall(r"(<script[^>]*>).*?</script>", text, flags=re.DOTALL)
    assert tags == [
        '<script type="application/json" id="nehmap-viewer-data">',
        "<script>",
        "<script>",
    ]
    outside = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.DOTALL)
    for forbidden in ('src="http', "<link", "@import", "url(", "http://", "https://"):
        assert forbidden not in outside, forbidden


def test_every_figure_is_an_embedded_png(study: dict) -> None:
    images = study["parsed"].images
    # Figure 1, Figure 2, Figure 2b, Figure 3, Figure 4, Figure 4b
    assert len(images) == 6
    for src in images:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.partition(",")[2], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = mpimg.imread(io.BytesIO(raw), format="png")
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 50
    assert study["text"].count("<figcaption>") == 6


def test_tables_printed_as_csv_equal_the_csvs(study: dict) -> None:
    checked = set()
    for table in study["parsed"].tables:
        form, source = table["attrs"].get("data-form"), table["attrs"].get("data-source")
        if form not in ("csv", "columns"):
            continue
        csv = read_csv(study["out"] / "tables" / source)
        assert len(table["rows"]) == len(csv), source
        if form == "csv":
            assert table["columns"] == list(csv.columns), source
        for row, (_, expected) in zip(table["rows"], csv.iterrows(), strict=True):
            for column, cell in zip(table["columns"], row, strict=True):
                if column in csv.columns:
                    assert matches(cell, expected[column], column), (source, column, cell)
        checked.add(source)
    assert {
        "table1_agreement_regions.csv",
        "table2_agreement_neh.csv",
        "table4_mixed_models.csv",
        "rcbv_tests.csv",
        "rims_summary.csv",
        "rims_tests.csv",
        "recurrence_tests.csv",
        "agreement_summary.csv",
        "rcbv_summary.csv",
        "table3_intensity.csv",
        "excluded.csv",
        "errors.csv",
    } <= checked


def _derived(study: dict, form: str) -> dict:
    tables = [t for t in study["parsed"].tables if t["attrs"].get("data-form") == form]
    assert len(tables) == 1, form
    return tables[0]


def test_table3_cells_equal_the_csv(study: dict) -> None:
    table = _derived(study, "table3")
    csv = read_csv(study["out"] / "tables" / "table3_intensity.csv")
    assert table["columns"][2:] == ["paunet", "unetrpp"]
    assert len(table["rows"]) == len(csv) // 2
    for row in table["rows"]:
        modality, label = row[0], row[1]
        for model, cell in zip(table["columns"][2:], row[2:], strict=True):
            expected = csv[
                (csv["model"] == model)
                & (csv["modality"] == modality.lower())
                & (csv["label_name"] == label)
            ].iloc[0]
            mean, sd = mean_sd(cell)
            assert abs(mean - expected["mean_of_means"]) <= 0.005 + 1e-9
            assert abs(sd - expected["sd"]) <= 0.005 + 1e-9


def test_table5_cells_equal_the_csv(study: dict) -> None:
    table = _derived(study, "table5")
    csv = read_csv(study["out"] / "tables" / "rcbv_summary.csv")
    expected_rows = csv[csv["compartment"].isin(["NEH", "NEH-low", "NEH-high", "NEH-low+high"])]
    assert len(table["rows"]) == len(expected_rows)
    columns = table["columns"]
    for row in table["rows"]:
        cells = dict(zip(columns, row, strict=True))
        hit = expected_rows[
            (expected_rows["model"].map(model_label) == cells["method"])
            & (expected_rows["compartment"] == cells["compartment"])
        ]
        assert len(hit) == 1
        mean, sd = mean_sd(cells["mean_sd"])
        assert abs(mean - hit.iloc[0]["mean_of_means"]) <= half_unit(cells["mean_sd"].split()[0])
        assert abs(sd - hit.iloc[0]["sd"]) <= half_unit(cells["mean_sd"].split()[-1])
        assert int(cells["n_cases"]) == hit.iloc[0]["n_cases"]


def _mean_sd_matches(cell: str, mean: float, sd: float) -> bool:
    shown_mean, shown_sd = mean_sd(cell)
    parts = cell.split(" ± ")
    return (
        abs(shown_mean - mean) <= half_unit(parts[0]) + 1e-12
        and shown_sd is not None
        and abs(shown_sd - sd) <= half_unit(parts[1]) + 1e-12
    )


def test_table6_equals_the_recurrence_summary(study: dict) -> None:
    table = _derived(study, "table6s")
    assert table["attrs"]["data-source"] == "recurrence_summary.csv"
    csv = read_csv(study["out"] / "tables" / "recurrence_summary.csv")
    assert [r[0] for r in table["rows"]] == list(dict.fromkeys(csv["metric"]))
    for row in table["rows"]:
        cells = dict(zip(table["columns"], row, strict=True))
        sub = csv[csv["metric"] == cells["metric"]].set_index("scale")
        assert _mean_sd_matches(cells["value"], sub.loc["raw", "mean"], sub.loc["raw", "sd"])
        assert _mean_sd_matches(cells["ratio"], sub.loc["ratio", "mean"], sub.loc["ratio", "sd"])
        assert int(cells["n"]) == sub.loc["raw", "n"]
    units = {r[0]: r[2] for r in table["rows"]}
    assert units == {
        "mean_edge_distance": "mm",
        "fraction_inside": "fraction",
        "volume_containment": "mm³",
    }


def test_table6_from_cases_uses_the_included_subjects_only() -> None:
    cases = _recurrence_tables(np.random.default_rng(1))["recurrence_cases"]
    table = paper.table6(cases)
    kept = cases[cases["included"]]
    for _, row in table.iterrows():
        sub = kept[kept["metric"] == row["metric"]]
        assert _mean_sd_matches(row["value"], sub["value"].mean(), sub["value"].std(ddof=1))
        assert _mean_sd_matches(row["ratio"], sub["ratio"].mean(), sub["ratio"].std(ddof=1))
        assert row["n"] == "5"


def test_table7_holds_the_papers_tests_with_one_sided_p(study: dict) -> None:
    table = _derived(study, "table7")
    csv = read_csv(study["out"] / "tables" / "recurrence_tests.csv")
    expected = csv[csv["test"] == "paper"]
    assert len(table["rows"]) == len(expected)
    assert {"alternative", "p_value", "p_two_sided", "observed_mean", "null_mean"} <= set(
        table["columns"]
    )
    for row, (_, want) in zip(table["rows"], expected.iterrows(), strict=True):
        for column, cell in zip(table["columns"], row, strict=True):
            assert matches(cell, want[column], column), (column, cell)
    assert "cannot fail" in study["text"]  # the note on the degenerate distance test


def test_excluded_and_failed_cases_are_listed_and_escaped(study: dict) -> None:
    text = study["text"]
    assert "&lt;odd&amp;id&gt;" in text and ODD_ID not in text
    assert "early post-operative scan" in text
    assert "CASE-404" in text and "bad file &lt;script&gt;" in text
    assert "Report test &lt;study&gt;" in text


def test_methods_name_the_configured_parameters(study: dict) -> None:
    methods = study["text"].split('id="methods"')[1].split("</section>")[0]
    plain = re.sub(r"<[^>]+>", "", methods)
    for expected in (
        "PAUNet",
        "UNETR++",
        "unetrpp-consensus",
        "σ = 1.75 mm",
        "p ≥ 0.45",
        "0.15 ≤ p",
        "surface_elements",
        "3.5 mm",
        "98.5th percentile",
        "1.5 mm, 3 mm",
        "fused NEH mask",
        "preset = affine",
        "123 random placements",
        "4,321 random sign flips",
        "seed 7",
        "without test-time mirroring",
        "numpy",
        "scipy",
        "torch",
        "nibabel",
        "pandas",
        "statsmodels",
        "antspyx",
        "python",
    ):
        assert expected in plain, expected


def test_figure4_finds_the_warped_pneh_in_either_layout(tmp_path: Path) -> None:
    mask = (_blob_labels() == 3).astype(np.uint8)
    save(tmp_path / "recurrence" / "S1" / "S1_pneh.nii.gz", mask)
    save(tmp_path / "recurrence" / "S1" / "S1_preop-core.nii.gz", mask)
    save(tmp_path / "recurrence" / "S2" / "nested" / "warped_mask.nii.gz", mask)
    save(tmp_path / "recurrence" / "S3" / "S3_warped_t1.nii.gz", mask.astype(np.float32))
    save(tmp_path / "recurrence" / "warped" / "S4_pneh.nii.gz", mask)
    save(tmp_path / "recurrence" / "warped" / "S5_pneh.nii.gz", mask)
    found = find_pneh_files(tmp_path)
    assert {k: v.name for k, v in found.items()} == {
        "S1": "S1_pneh.nii.gz",
        "S2": "warped_mask.nii.gz",
        "S4": "S4_pneh.nii.gz",
        "S5": "S5_pneh.nii.gz",
    }


def test_figure1_notes_a_missing_t1c(study: dict) -> None:
    assert "No readable T1c for CASE-003" in study["text"]


def test_missing_tables_and_images_give_notes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    pd.DataFrame(columns=["stage", "case", "message"]).to_csv(
        out / "tables" / "errors.csv", index=False
    )
    (out / "tables" / "rims_tests.csv").write_text("a,b\n1,2\n3,4,5,6,7\n")  # malformed
    config = _config(tmp_path, {"perfusion": {"path": "data"}})
    path = write_report(config, out, out / "work")
    text = path.read_text(encoding="utf-8")
    parsed = parse(text)
    assert parsed.images == []
    assert "tables/table1_agreement_regions.csv was not produced" in text
    assert "Figure 2 not available" in text and "Figure 3 not available" in text
    assert "Figure 1 is left out" in text and "Figure 4 is left out" in text
    assert "rims_tests.csv could not be read" in text
    assert "No case failed." in text
    assert "tables/excluded.csv was not produced" in text


def test_number_formats() -> None:
    assert format_p(5e-5) == "< 0.0001"
    assert format_p(0.034412) == "0.03441"
    assert format_p(0.5) == "0.5000"
    assert format_p(float("nan")) == "–"
    assert format_number(57.3912) == "57.39"
    assert format_number(0.83123) == "0.8312"
    assert format_number(9.99996) == "10.00"
    assert format_number(12345.6) == "12346"
    assert format_number(4.2e-5) == "4.200e-05"
    assert format_number(np.int64(12)) == "12"
    assert format_mean_sd(0.8312, 0.1499) == "0.83 ± 0.15"
    assert format_mean_sd(0.0421, 0.011) == "0.042 ± 0.011"
    assert format_mean_sd(374.618, float("nan")) == "374.62"


def test_radiological_display_puts_patient_right_left_and_anterior_up() -> None:
    axial = np.zeros((5, 4))  # axis 0: left -> right, axis 1: posterior -> anterior
    axial[4, 3] = 1  # the patient's right-most, anterior-most voxel
    shown = radiological(axial)
    assert shown.shape == (4, 5)
    assert shown[0, 0] == 1  # top (anterior), left of the image (patient's right)


def test_examples_are_chosen_by_neh_volume_deterministically() -> None:
    volumes = pd.Series({"b": 10.0, "a": 10.0, "c": 30.0, "d": 0.0, "e": 50.0, "f": 20.0})
    chosen = pick_examples(volumes, 3)
    assert [c for c, _ in chosen] == ["f", "b", "c"]  # median, lower quartile, upper quartile
    assert chosen[0][1].startswith("median NEH volume")
    assert pick_examples(pd.Series({"x": 0.0}), 3) == []


def test_a_table_with_unexpected_columns_costs_only_its_section(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    pd.DataFrame({"foo": [1.0], "bar": ["x"]}).to_csv(
        out / "tables" / "table3_intensity.csv", index=False
    )
    config = _config(tmp_path, {"perfusion": {"path": "data"}})
    text = write_report(config, out, out / "work").read_text(encoding="utf-8")
    intensities = text.split('id="intensities"')[1].split("</section>")[0]
    assert "could not be built (KeyError" in intensities
    assert 'id="methods"' in text and 'id="appendix"' in text


def test_methods_list_every_configuration_value(study: dict) -> None:
    table = _derived(study, "config")
    shown = {row[0]: row[1] for row in table["rows"]}
    assert shown["segment.sigma_mm"] == "1.75"
    assert shown["recurrence.null_n"] == "123"
    assert shown["rims.rims_mm"] == "1.5, 3.0"
    assert shown["cohorts.perfusion.path"] == "data"
    assert set(shown) >= {f"agreement.{k}" for k in ("pred", "ref", "method", "tolerance_mm")}
