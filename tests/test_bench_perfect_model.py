"""benchmarks/bench_perfect_model.py: models' scores beside a perfect model's, case for case."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_perfect_model")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _perfect(rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    cols = ["set", "family", "case", "region", "dice"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["model_spacing_mm"] = 2.0
    return frame


def test_transfer_and_mni_files_are_read_to_dice_rows(bench, tmp_path: Path) -> None:
    transfer = tmp_path / "transfer.csv"
    pd.DataFrame(
        [
            ["small-00", "small", "standard", "paunet", "ET", "dice", 0.5],
            ["small-00", "small", "standard", "paunet", "ET", "false_positive_ml", 3.0],
            ["small-00", "small", "standard", "fused", "NEH", "dice", 0.1],
        ],
        columns=["case", "family", "style", "model", "region", "metric", "value"],
    ).to_csv(transfer, index=False)
    rows = bench.read_scores(transfer)
    assert rows.to_dict("records") == [
        {"case": "small-00", "model": "paunet", "region": "ET", "dice": 0.5},
        {"case": "small-00", "model": "fused", "region": "fused NEH", "dice": 0.1},
    ]
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"case": ["a"], "score": [1.0]}).to_csv(wrong, index=False)
    with pytest.raises(SystemExit, match=r"wrong\.csv: no column dice, model, region"):
        bench.read_scores(wrong)


def test_means_are_over_the_cases_both_sides_scored(bench) -> None:
    perfect = _perfect(
        [
            ("nehmap", "small", "small-00", "ET", 0.8),
            ("nehmap", "small", "small-01", "ET", 0.9),
            ("nehmap", "small", "small-00", "fused NEH", 0.2),
            ("nehmap", "small", "small-01", "fused NEH", 0.3),
            ("independent", "small", "BraTS2021_90300", "ET", 1.0),
        ]
    )
    scores = pd.DataFrame(
        [
            # small-01 has no model ET: its perfect ET (0.9) stays out of that mean
            ["small-00", "paunet", "ET", 0.4],
            ["small-00", "fused", "fused NEH", 0.0],
            ["small-01", "fused", "fused NEH", 0.1],
            ["BraTS2021_90300", "paunet", "ET", 0.7],
            ["not-a-perfect-case", "paunet", "ET", 0.0],
        ],
        columns=["case", "model", "region", "dice"],
    )
    table = bench.beside(perfect, scores, 2.0)
    assert table.loc[("nehmap", "small"), ("paunet ET", "model")] == pytest.approx(0.4)
    assert table.loc[("nehmap", "small"), ("paunet ET", "perfect")] == pytest.approx(0.8)
    assert table.loc[("nehmap", "small"), ("fused NEH", "model")] == pytest.approx(0.05)
    assert table.loc[("nehmap", "small"), ("fused NEH", "perfect")] == pytest.approx(0.25)
    assert table.loc[("independent", "small"), ("paunet ET", "model")] == pytest.approx(0.7)
    with pytest.raises(SystemExit, match="No case of --scores"):
        bench.beside(perfect, scores[scores.case == "not-a-perfect-case"], 2.0)
