"""Broken inputs, one kind per test, through the real commands (``nehmap segment``/``cases``).

Every kind is planted in its own case of a small cohort that also holds good cases. For
each kind the command must name the file and the problem, exit with status 1 (some cases
failed) or 2 (nothing could start), print no traceback, write nothing for the broken case,
and still process the good ones. The cohorts are built once per module and each command
runs once over them, so the whole file stays cheap.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import malformed as mf
import nehmap
from nehmap.cli import main

SRC = str(Path(nehmap.__file__).resolve().parents[1])
EXTRA_KINDS = ("non_utf8_name", "long_name")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``nehmap ARGS`` in a fresh interpreter (so a traceback would be visible)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "nehmap.cli", *args],
        capture_output=True,
        encoding="utf-8",
        errors="backslashreplace",
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("malformed") / "in"
    ids = mf.build_image_cohort(root)
    ids["non_utf8_name"] = mf.non_utf8_id()
    mf.write_good_case(root, ids["non_utf8_name"], 40)
    ids["long_name"] = mf.LONG_ID
    mf.write_good_case(root, mf.LONG_ID, 41)
    return root, ids


@pytest.fixture(scope="module")
def segment_run(cohort, checkpoints):
    root, _ = cohort
    out = root.parent / "seg-out"
    models = ",".join(str(checkpoints / n) for n in ("tiny-paunet", "tiny-unetrpp"))
    proc = run_cli("segment", str(root), "-o", str(out), "--models", models, "--overlap", "0")
    return proc, out


@pytest.fixture(scope="module")
def cases_run(cohort):
    root, _ = cohort
    table = root.parent / "cases-out" / "cases.csv"
    proc = run_cli("cases", str(root), "--check", "--strict", "--csv", str(table))
    with open(table, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        rows = {row["case"]: row for row in csv.DictReader(handle)}
    return proc, rows


def _expected(kind: str, root: Path, ids: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """(text naming the file or case folder, fragments of the problem) for a kind."""
    case_id = ids[kind]
    if kind == "non_utf8_name":
        return "BraTS2021_caf\\xe9", ("utf-8",)
    if kind == "long_name":
        return str(root / case_id), ("bytes long",)
    spec = next(k for k in mf.IMAGE_KINDS if k.name == kind)
    if spec.builder is not None:
        return str(root / case_id), spec.expect
    return str(mf.case_path(root, case_id, "flair")), spec.expect


ALL_KINDS = [k.name for k in mf.IMAGE_KINDS] + list(EXTRA_KINDS)


def _failure_line(output: str, case_id: str) -> str:
    printable = case_id.encode("utf-8", "backslashreplace").decode()
    lines = [ln for ln in output.splitlines() if ln.strip().startswith(f"FAILED {printable}:")]
    assert len(lines) == 1, f"no single FAILED line for {printable}:\n{output}"
    return lines[0]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_segment_rejects_kind_and_segments_the_rest(kind, cohort, segment_run):
    root, ids = cohort
    proc, out = segment_run
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    line = _failure_line(proc.stdout, ids[kind])
    where, fragments = _expected(kind, root, ids)
    assert where in line
    for fragment in fragments:
        assert fragment in line.lower(), line
    case_out = out / ids[kind]
    assert not case_out.exists() or not any(case_out.iterdir()), "output written for a bad case"
    for good in mf.GOOD_IDS:  # the good cases (one a 4D file of a single volume) were done
        prob = nib.load(out / good / f"{good}_neh-prob.nii.gz")
        assert prob.shape == mf.SHAPE


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_cases_check_reports_kind(kind, cohort, cases_run):
    root, ids = cohort
    proc, rows = cases_run
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    row = rows[ids[kind]]
    where, fragments = _expected(kind, root, ids)
    assert row["status"] == "bad", row
    problem = os.fsencode(row["problem"]).decode("utf-8", "backslashreplace")
    assert where in problem
    for fragment in fragments:
        assert fragment in problem.lower(), problem
    for good in mf.GOOD_IDS:
        assert rows[good]["status"] == "ok", rows[good]


def test_segment_counts(cohort, segment_run):
    _, ids = cohort
    proc, _ = segment_run
    assert f"{len(mf.GOOD_IDS)} case(s) segmented" in proc.stdout
    assert f"{len(ids)} failed" in proc.stdout


# --------------------------------------------------------------------------- labels and ids


@pytest.fixture(scope="module")
def label_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels") / "in"
    ids = {}
    mf.write_good_case(root, "BraTS2021_00001", 1)
    mf.write_labels(root, "BraTS2021_00001", mf.good_labels())
    ids["float_labels"] = "BraTS2021_00200"
    mf.write_good_case(root, ids["float_labels"], 2)
    fractional = mf.good_labels().astype(np.float32)
    fractional[fractional > 0] += 0.25
    mf.write_labels(root, ids["float_labels"], fractional)
    ids["labels_outside_scheme"] = "BraTS2021_00201"
    mf.write_good_case(root, ids["labels_outside_scheme"], 3)
    bad = mf.good_labels()
    bad[4, 4, 4] = 7
    mf.write_labels(root, ids["labels_outside_scheme"], bad)
    # the same case id in two site folders
    ids["duplicate_id"] = "BraTS2021_00300"
    mf.write_good_case(root / "siteA", ids["duplicate_id"], 4)
    mf.write_good_case(root / "siteB", ids["duplicate_id"], 5)
    proc = run_cli("cases", str(root), "--check", "--strict", "--csv", str(root.parent / "t.csv"))
    with open(root.parent / "t.csv", encoding="utf-8", newline="") as handle:
        rows = {row["case"]: row for row in csv.DictReader(handle)}
    return root, ids, proc, rows


@pytest.mark.parametrize(
    ("kind", "fragments"),
    [
        ("float_labels", ("non-integer",)),
        ("labels_outside_scheme", ("[7]", "outside")),
        ("duplicate_id", ("not unique", "sitea", "siteb")),
    ],
)
def test_cases_check_reports_label_and_id_problems(kind, fragments, label_cohort):
    root, ids, proc, rows = label_cohort
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    row = rows[ids[kind]]
    assert row["status"] == "bad"
    assert ids[kind] in row["problem"] or str(root) in row["problem"]
    for fragment in fragments:
        assert fragment in row["problem"].lower(), row["problem"]
    assert rows["BraTS2021_00001"]["status"] == "ok"


def test_unreadable_file_is_named(tmp, monkeypatch, capsys):
    """A file without read permission. Root reads anything, so there the kernel's refusal
    is simulated by making ``open`` raise the PermissionError a normal user would get."""
    root = tmp / "in"
    mf.write_good_case(root, "BraTS2021_00001", 1)
    mf.write_good_case(root, "BraTS2021_00002", 2)
    locked = mf.case_path(root, "BraTS2021_00002", "t2")
    locked.chmod(0)
    try:
        if os.geteuid() == 0:
            import builtins

            real_open = builtins.open

            def refusing_open(file, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
                if isinstance(file, (str, os.PathLike)) and Path(file) == locked:
                    raise PermissionError(13, "Permission denied", str(file))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr(builtins, "open", refusing_open)
        code = main(["cases", str(root), "--check", "--strict"])
    finally:
        locked.chmod(0o644)
    out = capsys.readouterr().out
    assert code == 1
    assert f"{locked}: image file cannot be opened: permission denied" in out
    assert "BraTS2021_00001  found  found  found  found  -    -     ok" in out


# --------------------------------------------------------------------------- manifests


def _manifest_cohort(tmp: Path) -> Path:
    root = tmp / "data"
    mf.write_good_case(root, "BraTS2021_00001", 1)
    mf.write_good_case(root, "BraTS2021_00002", 2)
    return root


def _manifest_rows(root: Path, case_ids: tuple[str, ...]) -> list[list[str]]:
    rows = [["case", "timepoint", "modality", "path"]]
    for cid in case_ids:
        for key in mf.TOKENS:
            rows.append([cid, "", key, str(mf.case_path(root, cid, key).relative_to(root))])
    return rows


def test_manifest_missing_column_refused(tmp, capsys):
    root = _manifest_cohort(tmp)
    rows = [[r[0], r[2], r[3]] for r in _manifest_rows(root, ("BraTS2021_00001",))]
    rows[0][1] = "sequence"  # no 'modality' column
    (root / "cases.csv").write_text("\n".join(",".join(r) for r in rows))
    assert main(["cases", str(root / "cases.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'cases.csv'}: is missing the column(s) ['modality']" in err


@pytest.mark.parametrize(("bom", "sep"), [(True, ","), (False, ";"), (True, ";")])
def test_manifest_with_bom_or_semicolons_is_read(tmp, capsys, bom, sep):
    root = _manifest_cohort(tmp)
    text = "\n".join(
        sep.join(r) for r in _manifest_rows(root, ("BraTS2021_00001", "BraTS2021_00002"))
    )
    (root / "cases.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    assert main(["cases", str(root / "cases.csv"), "--check", "--strict"]) == 0
    out = capsys.readouterr().out
    assert "2 usable, 0 with problems" in out


def test_manifest_path_outside_its_folder_refused(tmp, capsys):
    root = _manifest_cohort(tmp)
    mf.write_good_case(root, "BraTS2021_00009", 9, skip="t1")
    mf.write_good_case(tmp / "elsewhere", "BraTS2021_00009", 9)
    rows = _manifest_rows(root, ("BraTS2021_00001", "BraTS2021_00009"))
    for row in rows:
        if row[0] == "BraTS2021_00009" and row[2] == "t1":
            row[3] = "../elsewhere/BraTS2021_00009/BraTS2021_00009_t1.nii.gz"
    (root / "cases.csv").write_text("\n".join(",".join(r) for r in rows))
    out_csv = tmp / "out" / "cases.csv"
    assert main(["cases", str(root / "cases.csv"), "--strict", "--csv", str(out_csv)]) == 1
    out = capsys.readouterr().out
    assert "points outside the manifest's folder" in out
    with open(out_csv, newline="") as handle:
        status = {r["case"]: r["status"] for r in csv.DictReader(handle)}
    # the escaping file is not taken, so the case lacks its t1 and is refused
    assert status == {"BraTS2021_00001": "ok", "BraTS2021_00009": "incomplete"}


# --------------------------------------------------------------------------- checkpoints


def _copy_checkpoint(checkpoints: Path, name: str, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in checkpoints.glob(f"{name}.*"):
        (dst / f.name).write_bytes(f.read_bytes())
    return dst / name


@pytest.mark.parametrize(
    ("problem", "fragment"),
    [
        ("truncated_safetensors", "sha256"),
        ("truncated_safetensors_card_updated", "cannot read the safetensors weights"),
        ("card_sha256_mismatch", "sha256"),
    ],
)
def test_broken_checkpoint_refused_before_any_work(problem, fragment, tmp, checkpoints, capsys):
    import hashlib
    import json

    root = tmp / "in"
    mf.write_good_case(root, "BraTS2021_00001", 1)
    ckpt = _copy_checkpoint(checkpoints, "tiny-paunet", tmp / "ckpt")
    weights = ckpt.with_name(ckpt.name + ".safetensors")
    raw = weights.read_bytes()
    if problem.startswith("truncated"):
        weights.write_bytes(raw[: len(raw) // 3])
        if problem.endswith("card_updated"):  # a card rewritten for the damaged file
            card_path = ckpt.with_name(ckpt.name + ".json")
            card = json.loads(card_path.read_text())
            card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
            card_path.write_text(json.dumps(card))
    else:
        card_path = ckpt.with_name(ckpt.name + ".json")
        card = json.loads(card_path.read_text())
        card["weights_sha256"] = "0" * 64
        card_path.write_text(json.dumps(card))
    out = tmp / "out"
    assert main(["segment", str(root), "-o", str(out), "--models", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert str(weights) in err and fragment in err, err
    assert not out.exists() or not any(out.rglob("*.nii.gz"))
