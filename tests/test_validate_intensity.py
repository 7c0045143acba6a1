import numpy as np
import pandas as pd
import pytest

from nehmap.labels import ED, NEH
from nehmap.validate.intensity import intensity_summary, intensity_tests, label_intensities


def test_label_intensities_raw_and_zscored():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5] = ED
    labels[5:7] = NEH
    img = np.where(labels == ED, 100.0, np.where(labels == NEH, 90.0, 50.0))
    t = label_intensities({"flair": img}, labels).set_index("label_name")
    assert t.loc["ED", "mean"] == 100 and t.loc["NEH", "mean"] == 90
    assert t.loc["NEH", "n_voxels"] == 200
    z = label_intensities({"flair": img}, labels, normalise="zscore").set_index("label_name")
    sd = img.std()
    assert z.loc["ED", "mean"] - z.loc["NEH", "mean"] == pytest.approx(10 / sd)


def test_mixed_model_recovers_the_planted_difference():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        level = rng.normal(350, 60)  # scanner scale per case
        for label, effect in ((ED, 0.0), (NEH, -25.0)):
            rows.append(
                {
                    "case": f"c{i}",
                    "model": "paunet",
                    "modality": "flair",
                    "label": label,
                    "mean": level + effect + rng.normal(0, 10),
                }
            )
    tests = intensity_tests(pd.DataFrame(rows)).iloc[0]
    assert tests.estimate == pytest.approx(-25, abs=3 * tests.se)
    assert tests.p < 1e-10 and tests.z < -8
    summary = intensity_summary(pd.DataFrame(rows))
    assert set(summary.label_name) == {"ED", "NEH"}
