"""H1 with large vessels kept and left out: the table and the report's line."""

import numpy as np
import pandas as pd

from nehmap.report.sensitivity import vessel_sensitivity_html
from nehmap.validate.rcbv import rcbv_tests, vessel_sensitivity


def _cases(seed: int, et_mean: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for case in range(12):
        for compartment, mean in (("ET", et_mean), ("NEH", 2.5), ("ED", 1.5), ("NC", 1.0)):
            rows.append(
                {
                    "case": f"c{case:02d}",
                    "model": "paunet",
                    "compartment": compartment,
                    "mean": mean + rng.normal(0, 0.3),
                    "median": mean,
                    "n_voxels": 100,
                }
            )
    return pd.DataFrame(rows)


def test_both_ways_hold_the_tests_of_each_table():
    kept, excluded = _cases(0, 4.0), _cases(1, 2.6)  # vessels trimmed: ET pulled down
    table = vessel_sensitivity({"kept": kept, "excluded": excluded})
    assert list(table.columns[:2]) == ["vessels", "model"]
    for way, cases in (("kept", kept), ("excluded", excluded)):
        expected = rcbv_tests(cases)
        got = table[table.vessels == way].drop(columns="vessels").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)
    html = vessel_sensitivity_html(table, ["paunet"], "kept", 99.0)
    assert "large vessels kept (primary)" in html and "large vessels left out:" in html
    assert "99th" in html and html.count("ET &gt; NEH p") == 2
    assert vessel_sensitivity_html(None, ["paunet"], "kept", 99.0) == ""
