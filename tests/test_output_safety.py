"""Output folders under stress: two runs at once, stale locks, unwritable folders, a full
disk, and inputs that must never change."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import pytest

import malformed as mf
import nehmap
from nehmap.cli import main
from nehmap.io.lock import LOCK_NAME, output_lock

SRC = str(Path(nehmap.__file__).resolve().parents[1])
CASES = ("BraTS2021_00001", "BraTS2021_00002")


@pytest.fixture
def cohort(tmp):
    root = tmp / "in"
    for i, cid in enumerate(CASES):
        mf.write_good_case(root, cid, i + 1)
    return root


@pytest.fixture
def models(checkpoints):
    return ",".join(str(checkpoints / n) for n in ("tiny-paunet", "tiny-unetrpp"))


def _segment(cohort: Path, out: Path, models: str, *extra: str) -> int:
    return main(["segment", str(cohort), "-o", str(out), "--models", models, *extra])


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that takes the folder's lock and sleeps."""
    code = (
        "import sys, time\n"
        "from nehmap.io.lock import output_lock\n"
        f"with output_lock({str(folder)!r}, 'nehmap segment (other run)'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_refused_then_stale_lock_taken_over(cohort, models, tmp, capsys):
    out = tmp / "out"
    holder = _holder(out)
    try:
        assert _segment(cohort, out, models) == 1
        err = capsys.readouterr().err
        assert f"{out}: this output folder is in use by nehmap run PID {holder.pid}" in err
        assert f"on host {socket.gethostname()}" in err
        assert not list(out.rglob("*.nii.gz"))  # the refused run did nothing
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: a stale lock file
        holder.wait()
    assert (out / LOCK_NAME).exists()
    assert _segment(cohort, out, models) == 0
    captured = capsys.readouterr()
    assert f"took over a stale lock left by nehmap run PID {holder.pid}" in captured.err
    assert "2 case(s) segmented" in captured.out
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_study_refused_while_folder_is_locked(tmp, capsys):
    out = tmp / "study-output"
    config = tmp / "study.toml"
    config.write_text(
        '[study]\nname = "t"\noutput = "study-output"\n\n[cohorts.perfusion]\npath = "in"\n'
    )
    (tmp / "in").mkdir()
    with output_lock(out, "nehmap study (first run)"):
        assert main(["study", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"in use by nehmap run PID {os.getpid()}" in err
    assert "nehmap study (first run)" in err


def test_lock_is_exclusive_within_and_across_opens(tmp):
    with output_lock(tmp / "o", "a"):
        with pytest.raises(nehmap.errors.OutputError, match="in use"):
            with output_lock(tmp / "o", "b"):
                pass
    with output_lock(tmp / "o", "c"):  # free again after release
        pass


def test_output_folder_that_cannot_be_written_is_refused_before_work(cohort, models, tmp, capsys):
    blocker = tmp / "a-file"
    blocker.write_text("not a folder")
    start = time.perf_counter()
    assert _segment(cohort, blocker / "out", models) == 1
    err = capsys.readouterr().err
    assert f"{blocker / 'out'}: the output folder cannot be written" in err
    assert time.perf_counter() - start < 5


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def test_read_only_file_system_refused_before_work(cohort, models, tmp, capsys):
    ro = tmp / "ro"
    if not _mount_tmpfs(ro, "ro,size=64k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        assert _segment(cohort, ro / "out", models) == 1
        err = capsys.readouterr().err
        assert "the output folder cannot be written (Read-only file system)" in err
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def _fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system holding ``folder`` until about ``leave_bytes`` are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "filler", "wb") as handle:
        with contextlib.suppress(OSError):
            handle.write(b"\0" * max(0, free - leave_bytes))


def _check_no_partial_outputs(out: Path) -> None:
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "temporary file left"
    for path in out.rglob("*.nii.gz"):
        assert nib.load(path).get_fdata().size > 0  # complete, readable files only


def test_full_disk_stops_with_clear_message_and_no_partial_file(cohort, models, tmp, capsys):
    disk = tmp / "small-disk"
    if not _mount_tmpfs(disk, "size=256k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        out = disk / "out"
        out.mkdir()
        _fill(disk, leave_bytes=24 * 1024)
        assert _segment(cohort, out, models) == 1
        err = capsys.readouterr().err
        assert "cannot be written: the file system holding" in err and "is full" in err
        assert "Traceback" not in err
        _check_no_partial_outputs(out)
        # with space again, the rerun completes every case
        (disk / "filler").unlink()
        assert _segment(cohort, out, models) == 0
        for cid in CASES:
            assert (out / cid / f"{cid}_neh-prob.nii.gz").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_injected_enospc_mid_write_leaves_no_partial_file(cohort, models, tmp, capsys, monkeypatch):
    """Where no tmpfs can be mounted: the NIfTI writer fails with ENOSPC half-way."""
    from nehmap.io import image

    real_save = image._save_nifti
    calls = {"n": 0}

    def failing_save(data, grid, tmp_path, description):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 3:
            Path(tmp_path).write_bytes(b"\x1f\x8b partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path))
        return real_save(data, grid, tmp_path, description)

    monkeypatch.setattr(image, "_save_nifti", failing_save)
    out = tmp / "out"
    assert _segment(cohort, out, models) == 1
    err = capsys.readouterr().err
    assert "is full (No space left on device)" in err
    _check_no_partial_outputs(out)
    assert calls["n"] == 3  # stopped at the failure, no later write attempted


# --------------------------------------------------------------------------- inputs


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_inputs_never_touched(cohort, models, tmp, capsys):
    before = _checksums(cohort)
    stats = {p: p.stat().st_mtime_ns for p in cohort.rglob("*")}
    out = tmp / "out"
    assert main(["cases", str(cohort), "--check", "--csv", str(out / "cases.csv")]) == 0
    assert _segment(cohort, out, models) == 0
    assert _segment(cohort, out, models, "--overwrite") == 0
    # an output folder inside the input collection is refused, and nothing is written
    assert _segment(cohort, cohort / "results", models) == 2
    assert "inside the input collection" in capsys.readouterr().err
    assert _segment(cohort, cohort / CASES[0], models) == 2
    assert _checksums(cohort) == before
    assert {p: p.stat().st_mtime_ns for p in cohort.rglob("*")} == stats


def test_taking_the_lock_sweeps_temporaries_of_a_killed_run(tmp, capsys):
    out = tmp / "out"
    (out / "case").mkdir(parents=True)
    left = out / "case" / ".case_neh-prob.tmp-0a1b2c3d.nii.gz"
    left.write_bytes(b"half a file")
    kept = out / "case" / "case_neh-prob.nii.gz"
    kept.write_bytes(b"finished")
    with output_lock(out, "test"):
        pass
    assert not left.exists() and kept.read_bytes() == b"finished"
    assert "removed 1 unfinished temporary file(s)" in capsys.readouterr().err
