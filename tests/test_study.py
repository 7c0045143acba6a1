"""nehmap study end to end on a tiny synthetic cohort: tables, resume after SIGKILL, Dask."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nehmap.cli import main
from nehmap.io import CaseFiles
from nehmap.study import StudyConfig, run_study
from nehmap.synth import write_cohort
from tiny_models import write_tiny_study_models

N_CASES = 4


def _config_text(cohort: Path, checkpoints: Path, output: Path, workers: int = 1) -> str:
    models = ", ".join(
        f'"{checkpoints / n}"' for n in ("tiny-paunet", "tiny-unetrpp", "tiny-consensus")
    )
    return f"""
[study]
name = "tiny"
output = "{output}"

[cohorts.perfusion]
path = "{cohort}"
exclude = "UPENN-GBM-00004"

[segment]
models = [{models}]

[agreement]
pred = "tiny-paunet"
ref = "tiny-unetrpp"

[rims]
et_model = "tiny-paunet"
neh_model = "tiny-paunet"

[execution]
workers = {workers}
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    write_cohort(root / "upenn", N_CASES, 3, spacing=4.0, layout="upenn", progress=False)
    return root / "upenn"


@pytest.fixture(scope="module")
def study_models(tmp_path_factory):
    """Tiny untrained models at the cohort's 4 mm, with few windows per case."""
    root = tmp_path_factory.mktemp("study-models")
    write_tiny_study_models(root)
    return root


def _tables(output: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((output / "tables").glob("*.csv"))}


@pytest.fixture(scope="module")
def reference_run(cohort, study_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    (root / "study.toml").write_text(_config_text(cohort, study_models, root / "out"))
    result = run_study(StudyConfig.from_file(root / "study.toml"), progress=False, report=False)
    return root, result


def test_tiny_study_tables(reference_run):
    root, result = reference_run
    assert len(result.errors) == 0
    tables = root / "out" / "tables"
    agreement = pd.read_csv(tables / "agreement_cases.csv")
    assert agreement["case"].nunique() == N_CASES - 1
    excluded = pd.read_csv(tables / "excluded.csv")
    assert excluded["case"].tolist() == ["UPENN-GBM-00004_11"]
    rcbv = pd.read_csv(tables / "rcbv_cases.csv")
    assert set(rcbv["model"]) == {"tiny-paunet", "tiny-unetrpp", "tiny-consensus", "levels"}
    table1 = pd.read_csv(tables / "table1_agreement_regions.csv")
    assert list(table1.columns) == ["metric", "ET", "TC", "WT"]
    for name in ("table3_intensity", "table4_mixed_models", "rcbv_summary", "rcbv_tests"):
        assert (tables / f"{name}.csv").is_file()
    # H1 keeps large vessels (as the paper); the other way is the sensitivity table
    both = pd.read_csv(tables / "rcbv_vessel_sensitivity.csv")
    assert set(both["vessels"]) == {"kept", "excluded"}
    primary = both[both.vessels == "kept"].drop(columns="vessels").reset_index(drop=True)
    tests = pd.read_csv(tables / "rcbv_tests.csv")
    pd.testing.assert_frame_equal(primary, tests, check_dtype=False)
    # the per-case agreement equals a direct evaluation of the segmentation outputs
    from nehmap.evaluate import evaluate_collections

    seg = root / "out" / "work" / "segment" / "perfusion"
    direct = evaluate_collections(seg, seg, pred_model="tiny-paunet", ref_model="tiny-unetrpp")
    merged = agreement.merge(direct.cases, on=["case", "region", "metric"], suffixes=("", "_d"))
    assert len(merged) == len(direct.cases)
    pd.testing.assert_series_equal(merged["value"], merged["value_d"], check_names=False, atol=1e-9)


def test_rerun_skips_and_gives_identical_tables(reference_run):
    root, _ = reference_run
    before = _tables(root / "out")
    result = run_study(StudyConfig.from_file(root / "study.toml"), progress=False, report=False)
    assert _tables(root / "out") == before
    assert result.timings["segment perfusion"] < 5


def test_killed_study_resumes_to_identical_outputs(reference_run, cohort, study_models, tmp):
    root, _ = reference_run
    (tmp / "study.toml").write_text(_config_text(cohort, study_models, tmp / "out"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nehmap.cli", "study", str(tmp / "study.toml"), "--no-report"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    markers = tmp / "out" / "work" / "segment" / "perfusion"
    while time.time() < deadline and len(list(markers.glob("*/done.json"))) < 1:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(["study", str(tmp / "study.toml"), "--no-report"]) == 0
    assert _tables(tmp / "out") == _tables(root / "out")
    leftovers = [p for p in (tmp / "out").rglob(".*tmp-*")]
    assert leftovers == [] or all(p.stat().st_size >= 0 for p in leftovers)


def test_dask_local_cluster_equals_local_run(reference_run, cohort, study_models, tmp):
    from distributed import LocalCluster

    root, _ = reference_run
    (tmp / "study.toml").write_text(_config_text(cohort, study_models, tmp / "out"))
    config = StudyConfig.from_file(tmp / "study.toml")
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        config.execution.scheduler = cluster.scheduler_address
        result = run_study(config, progress=False, report=False)
    assert len(result.errors) == 0
    assert _tables(tmp / "out") == _tables(root / "out")


def test_failing_case_goes_to_errors(cohort, study_models, tmp):
    import shutil

    broken = tmp / "broken"
    shutil.copytree(cohort, broken)
    t2 = next(broken.rglob("UPENN-GBM-00002_11_T2.nii.gz"))
    t2.write_bytes(t2.read_bytes()[:200])
    (tmp / "study.toml").write_text(_config_text(broken, study_models, tmp / "out"))
    result = run_study(StudyConfig.from_file(tmp / "study.toml"), progress=False, report=False)
    errors = pd.read_csv(tmp / "out" / "tables" / "errors.csv")
    assert errors["case"].tolist() == ["perfusion/UPENN-GBM-00002_11"]
    assert "T2.nii.gz" in errors["message"].iloc[0]
    assert pd.read_csv(tmp / "out" / "tables" / "agreement_cases.csv")["case"].nunique() == 2
    assert len(result.errors) == 1


def test_init_template_and_config_errors(tmp, capsys):
    assert main(["study", "--init", str(tmp / "s.toml")]) == 0
    config = StudyConfig.from_file(tmp / "s.toml")
    assert set(config.cohorts) == {"perfusion", "recurrence"}
    assert main(["study", "--init", str(tmp / "s.toml")]) == 2
    (tmp / "bad.toml").write_text(
        '[study]\nname = "x"\n[cohorts.perfusion]\npath = "a"\n[segment]\nmodel = ["paunet"]\n'
    )
    assert main(["study", str(tmp / "bad.toml")]) == 2
    assert "unknown key(s) ['model'] in [segment]" in capsys.readouterr().err


def test_study_with_both_cohorts_and_report(cohort, study_models, tmp):
    rhuh = tmp / "rhuh"
    write_cohort(rhuh, 3, 8, spacing=4.0, layout="rhuh", progress=False)
    text = _config_text(cohort, study_models, tmp / "out")
    text += f"""
[cohorts.recurrence]
path = "{rhuh}"

[recurrence]
preop_model = "tiny-paunet"
recurrence_model = "tiny-unetrpp"
preset = "affine"
null_n = 20
"""
    (tmp / "study.toml").write_text(text)
    result = run_study(StudyConfig.from_file(tmp / "study.toml"), progress=False)
    tables = tmp / "out" / "tables"
    assert len(result.errors) == 0, result.errors
    # untrained models may find no NEH or ET: such subjects are excluded with a reason
    excluded = pd.read_csv(tables / "excluded.csv")
    h3 = excluded[excluded.cohort == "recurrence"]
    analysed = (
        pd.read_csv(tables / "recurrence_cases.csv")["case"].nunique()
        if (tables / "recurrence_cases.csv").is_file()
        else 0
    )
    assert analysed + h3["case"].str.startswith("RHUH").sum() >= 3
    html = result.report.read_text()
    assert "<html" in html and "Table 1" in html
    assert "Sensitivity: large vessels." in html and "large vessels kept (primary)" in html
    # a rerun (everything cached) writes the same report, byte for byte
    again = run_study(StudyConfig.from_file(tmp / "study.toml"), progress=False)
    assert again.report.read_text() == html


def test_new_weights_under_the_same_name_make_the_cache_stale(cohort, study_models, tmp):
    """The cached segmentations are keyed by the models' weights, not only their names."""
    import shutil

    import torch

    from nehmap.models.checkpoint import load_checkpoint, save_checkpoint

    models = tmp / "models"
    shutil.copytree(study_models, models)
    (tmp / "study.toml").write_text(_config_text(cohort, models, tmp / "out"))
    config = StudyConfig.from_file(tmp / "study.toml")
    before = config.section_hash("segment")
    assert config.section_hash("segment") == before  # stable
    network, card = load_checkpoint(models / "tiny-paunet")
    with torch.no_grad():
        next(network.parameters()).add_(1.0)
    save_checkpoint(network, card, models / "tiny-paunet")
    assert config.section_hash("segment") != before
    assert config.section_hash("agreement") == StudyConfig.from_file(
        tmp / "study.toml"
    ).section_hash("agreement")


def test_segment_fusion_reaches_the_segment_step(tmp, capsys):
    from nehmap.study.pipeline import plan_segment_tasks

    text = '[study]\nname = "x"\n[cohorts.perfusion]\npath = "a"\n[segment]\nfusion = "{}"\n'
    (tmp / "staple.toml").write_text(text.format("staple"))
    config = StudyConfig.from_file(tmp / "staple.toml")
    files = CaseFiles("C1", "C1", None, "nnunet", {"t1": tmp / "t1.nii.gz"})
    (task,) = plan_segment_tasks(config, "perfusion", [files], tmp / "seg")
    assert task.fusion == "staple"
    # another fusion is a different segmentation: the cache key changes with it
    (tmp / "mean.toml").write_text(text.format("mean"))
    assert StudyConfig.from_file(tmp / "mean.toml").section_hash("segment") != config.section_hash(
        "segment"
    )
    (tmp / "max.toml").write_text(text.format("max"))
    assert main(["study", str(tmp / "max.toml")]) == 2
    err = capsys.readouterr().err
    assert "max.toml" in err and "[segment] fusion = 'max'" in err and "staple" in err
