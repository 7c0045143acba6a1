"""benchmarks/compare_scores.py: old → new tables over the cases both files scored."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_scores.py"


@pytest.fixture(scope="module")
def compare_scores():
    spec = importlib.util.spec_from_file_location("compare_scores", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_scores"] = module
    spec.loader.exec_module(module)
    return module


def _mni_rows(cases: dict[str, str], model: str, dice: dict[str, float]) -> list[dict]:
    return [
        {"case": c, "family": f, "model": model, "region": "NEH", "dice": dice[c]}
        for c, f in cases.items()
    ]


def test_means_use_only_common_cases_and_roles(compare_scores, tmp_path: Path) -> None:
    cases = {"a": "small", "b": "small", "c": "cortical"}
    old = pd.DataFrame(
        _mni_rows(cases, "fused", {"a": 0.2, "b": 0.4, "c": 0.9})
        + _mni_rows(cases, "paunet", {"a": 0.1, "b": 0.3, "c": 0.5})
    )
    # the new file lacks case b: it is left out of both sides
    new_cases = {"a": "small", "c": "cortical"}
    new = pd.DataFrame(
        _mni_rows(new_cases, "fused", {"a": 0.6, "c": 0.7})
        + _mni_rows(new_cases, "paunet-finetune-best", {"a": 0.8, "c": 0.4})
    )
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    tables = [compare_scores.read_scores(tmp_path / n) for n in ("old.csv", "new.csv")]
    text, fused = compare_scores.compare(tables)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    assert rows["small"] == "| small | 0.10 → 0.80 | 0.20 → 0.60 |"
    assert rows["cortical"] == "| cortical | 0.50 → 0.40 | 0.90 → 0.70 |"
    assert text.splitlines()[0] == "| family | paunet NEH | fused NEH |"
    assert fused == pytest.approx([(0.2 + 0.9) / 2, (0.6 + 0.7) / 2])


def test_transfer_tables_use_their_dice_rows(compare_scores, tmp_path: Path) -> None:
    rows = [
        ("x", "small", "standard", "unetrpp-consensus-best", "NEH", "dice", 0.3),
        ("x", "small", "standard", "unetrpp", "ET", "dice", 0.7),
        ("x", "small", "standard", "unetrpp", "ET", "false_positive_ml", 5.0),
    ]
    columns = ["case", "family", "style", "model", "region", "metric", "value"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "t.csv", index=False)
    table = compare_scores.read_scores(tmp_path / "t.csv")
    assert sorted(table["role"]) == ["unetrpp", "unetrpp-consensus"]
    text, fused = compare_scores.compare([table, table], by="style")
    assert text.splitlines()[2] == "| standard | 0.70 → 0.70 |"
    assert fused[0] != fused[0]  # NaN: no fused rows


def test_a_table_of_something_else_is_refused(compare_scores, tmp_path: Path) -> None:
    pd.DataFrame({"case": ["x"], "dice": [0.5]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SystemExit, match="bad.csv: not a per-case score table"):
        compare_scores.read_scores(tmp_path / "bad.csv")
