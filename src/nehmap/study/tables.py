"""Cohort tables of a study, built from the per-case CSVs (never from images).

Written to ``OUTPUT/tables`` (all tidy CSV; columns documented in ``docs/study.md``):

==============================  ===========================================================
agreement_cases.csv             case, region, metric, value, pred, ref
agreement_summary.csv           region, metric, mean, sd, median, n
table1_agreement_regions.csv    the paper's Table 1 (ET, TC, WT), cells "mean ± sd"
table2_agreement_neh.csv        the paper's Table 2 (NEH)
intensity_cases.csv             case, model, modality, label, label_name, mean, n_voxels
table3_intensity.csv            model, modality, label_name, mean_of_means, sd, n_cases
table4_mixed_models.csv         model, modality, estimate, se, z, F, df, p, ...
rcbv_cases.csv                  case, model, compartment, mean, median, n_voxels
rcbv_summary.csv                model, compartment, mean_of_means, sd, ... (Fig. 2, Table 5)
rcbv_tests.csv                  model, test, a, b, statistic, df, p, p_adjusted, n, note
rcbv_vessel_sensitivity.csv     vessels (kept/excluded), then as rcbv_tests: H1 both ways
rims_cases.csv                  case, region, mean, median, n_voxels
rims_summary.csv                region, mean_of_means, sd, n_cases (Figure 3)
rims_tests.csv                  test, a, b, statistic, df, p, p_adjusted, n, note
recurrence_cases.csv            case, metric, value, chance_expected, ratio, ... (Table 6)
recurrence_tests.csv            metric, test, observed_mean, null_mean, p_greater, ...
                                (Table 7)
excluded.csv                    cohort, case, reason
errors.csv                      stage, case, message
==============================  ===========================================================
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nehmap.io import write_text_atomic
from nehmap.study.config import StudyConfig


def gather(root: Path, name: str) -> pd.DataFrame:
    """Concatenate ``root/<case>/<name>.csv`` in case order (empty frame if none)."""
    frames = []
    for path in sorted(root.glob(f"*/{name}.csv")):
        if path.stat().st_size > 1:
            frames.append(pd.read_csv(path, keep_default_na=True))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _front(table: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    cols = [c for c in first if c in table.columns]
    return table[cols + [c for c in table.columns if c not in cols]]


def build_tables(
    config: StudyConfig, work: Path, out: Path, excluded: pd.DataFrame, errors: pd.DataFrame
) -> dict[str, Path]:
    """Compute and write every cohort table; returns name -> path of those written."""
    from nehmap.evaluate import NEH_COLUMNS, REGION_COLUMNS, paper_table, summarise
    from nehmap.validate.intensity import intensity_summary, intensity_tests
    from nehmap.validate.rcbv import rcbv_summary, rcbv_tests, vessel_sensitivity
    from nehmap.validate.rims import rim_tests, rims_summary

    tables: dict[str, pd.DataFrame] = {}
    measure = work / "measure"
    agreement = gather(measure, "agreement")
    if len(agreement):
        tables["agreement_cases"] = _front(agreement, ["case", "region", "metric", "value"])
        summary = summarise(agreement[["case", "region", "metric", "value"]])
        tables["agreement_summary"] = summary
        tables["table1_agreement_regions"] = paper_table(summary, REGION_COLUMNS).reset_index()
        tables["table2_agreement_neh"] = paper_table(summary, NEH_COLUMNS).reset_index()
    intensity = gather(measure, "intensity")
    if len(intensity):
        tables["intensity_cases"] = _front(intensity, ["case", "model", "modality", "label"])
        tables["table3_intensity"] = intensity_summary(intensity)
        tables["table4_mixed_models"] = intensity_tests(intensity)
    rcbv = gather(measure, "rcbv")
    if len(rcbv):
        tables["rcbv_cases"] = _front(rcbv, ["case", "model", "compartment"])
        tables["rcbv_summary"] = rcbv_summary(rcbv)
        tables["rcbv_tests"] = rcbv_tests(rcbv)
        other = gather(measure, "rcbv_alt")
        if len(other):
            primary = "excluded" if config.rcbv.exclude_vessels else "kept"
            alternative = "kept" if config.rcbv.exclude_vessels else "excluded"
            tables["rcbv_vessel_sensitivity"] = vessel_sensitivity(
                {primary: rcbv, alternative: other}
            )
    rims = gather(measure, "rims")
    if len(rims):
        tables["rims_cases"] = _front(rims, ["case", "region"])
        tables["rims_summary"] = rims_summary(rims)
        tables["rims_tests"] = rim_tests(rims)
    recurrence_dir = work / "recurrence"
    recurrence = gather(recurrence_dir, "recurrence")
    if len(recurrence):
        from nehmap.study.recurrence_step import recurrence_tables

        tables.update(recurrence_tables(recurrence, config))
    h3_excluded = gather(recurrence_dir, "excluded")
    if len(h3_excluded):
        excluded = pd.concat(
            [
                excluded,
                h3_excluded.assign(cohort="recurrence", reason="H3: " + h3_excluded["reason"]),
            ],
            ignore_index=True,
        )
    tables["excluded"] = _front(excluded, ["cohort", "case", "reason"])
    tables["errors"] = errors
    written = {}
    parquet = _parquet_available()
    for name, table in tables.items():
        written[name] = write_text_atomic(out / f"{name}.csv", table.to_csv(index=False))
        if parquet:
            from nehmap.io import atomic_path

            with atomic_path(out / f"{name}.parquet") as tmp:
                table.to_parquet(tmp, index=False)
    return written


def _parquet_available() -> bool:
    """Tables are also written as Parquet when pyarrow is installed."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True
