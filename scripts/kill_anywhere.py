"""Kill nehmap with SIGKILL at random moments, rerun, and check nothing was lost.

Three commands are tried, each on a small synthetic cohort (sizes printed):

- ``nehmap study``: perfusion cohort (segmentation, measurement, rCBV, tables) plus a
  recurrence cohort (registration, H3) and the HTML report. An uninterrupted run gives
  the reference; then, for each trial, a fresh run is killed after a random delay drawn
  uniformly over the reference's duration (so kills fall in every stage in proportion
  to its length), and ``nehmap study`` is run again to the end. The tables
  (``tables/*.csv``) and ``report.html`` must be byte-identical to the reference.
- ``nehmap segment``: the same, comparing every output file (NIfTI voxel data and
  headers, colour tables; the run record apart from its timings).
- ``nehmap train``: a short run straight through; then runs killed at random moments
  and continued with ``--resume`` (repeatedly, until done). The final weights
  (``latest.safetensors``) must be identical: every tensor bit for bit, and the same
  metadata (CPU: deterministic).

With ``--demo-kills N`` the study is the one ``nehmap demo`` runs (its cohort and the
shipped weights), and the kills are spread over its stages: kill k is aimed at
segmentation, measurement, registration or report in turn, at a moment drawn uniformly
inside that stage's window of an uninterrupted run (read from the stage timings the
study prints); a kill aimed at measurement or the report, stages of seconds, comes at
a random moment within the stage's length after its first output is on disk.

After every rerun no temporary file (``.*.tmp-*``) and no lock file may remain. The
stage a kill landed in is read from the files the killed run had finished.

    nice -n 10 python scripts/kill_anywhere.py --study-kills 10 --segment-kills 4 \\
        --train-kills 3
    nice -n 10 python scripts/kill_anywhere.py --demo-kills 10 --study-kills 0 \\
        --segment-kills 0 --train-kills 0

Exit status 0 when every trial passed; the figures go to docs/reliability.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny synthetic training collection


def nehmap(
    *args: str,
    kill_after: float | None = None,
    stdout: list | None = None,
    armed_by: Callable[[], bool] | None = None,
) -> tuple[int, float]:
    """Run ``nehmap ARGS``; with ``kill_after`` SIGKILL it then. (status, seconds).

    With ``armed_by`` the ``kill_after`` seconds count from the moment ``armed_by()``
    first returns true (polled every 0.2 s), not from the start.
    With ``stdout`` (a list) an uninterrupted run's standard output is appended to it.
    """
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nehmap.cli", *args],
        stdout=subprocess.PIPE if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    if kill_after is None:
        out, err = proc.communicate()
        if stdout is not None:
            stdout.append(out.decode(errors="replace"))
        if proc.returncode not in (0, 1):
            sys.stderr.write(err.decode(errors="replace")[-3000:])
        return proc.returncode, time.perf_counter() - start
    if armed_by is not None:
        while proc.poll() is None and not armed_by():
            time.sleep(0.2)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode, time.perf_counter() - start


def leftovers(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if ".tmp-" in p.name or p.name == ".nehmap.lock"
    )


def digest(paths: list[Path], base: Path) -> dict[str, str]:
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


# --------------------------------------------------------------------------- study


def study_outputs(out: Path) -> dict[str, str]:
    files = sorted((out / "tables").glob("*.csv")) + sorted(out.glob("report*.html"))
    return digest(files, out)


def study_stage(out: Path) -> str:
    """Which stage a killed study was in, from what it had finished."""
    if not (out / "work" / "segment").exists():
        return "start"
    work = out / "work"
    if list(out.glob("report*.html")) or (out / "report").exists():
        return "report"
    if (out / "tables").exists() and any((out / "tables").glob("*.csv")):
        return "tables/report"
    if (work / "recurrence").exists() and any((work / "recurrence").rglob("*")):
        return "registration"
    if (work / "measure").exists() and any((work / "measure").rglob("*")):
        return "measurement"
    return "segmentation"


def make_study(base: Path, cases: int, rec_subjects: int) -> tuple[str, str]:
    from nehmap.synth import write_cohort

    if not (base / "upenn").exists():
        write_cohort(base / "upenn", cases, 3, spacing=4.0, layout="upenn", progress=False)
        write_cohort(base / "rhuh", rec_subjects, 8, spacing=4.0, layout="rhuh", progress=False)
    models = make_models(base / "models")
    names = ", ".join(f'"{base / "models" / n}"' for n in models)

    def config(out: Path) -> str:
        return f"""
[study]
name = "kill"
output = "{out}"

[cohorts.perfusion]
path = "{base / "upenn"}"

[cohorts.recurrence]
path = "{base / "rhuh"}"

[segment]
models = [{names}]

[agreement]
pred = "tiny-paunet"
ref = "tiny-unetrpp"

[rims]
et_model = "tiny-paunet"
neh_model = "tiny-paunet"

[recurrence]
preop_model = "tiny-paunet"
recurrence_model = "tiny-unetrpp"
preset = "affine"
null_n = 20

[execution]
workers = 1
"""

    return config, names  # type: ignore[return-value]


def make_models(folder: Path) -> list[str]:
    from tiny_models import write_tiny_study_models

    return write_tiny_study_models(folder, training_data="untrained")


def trial_study(base: Path, kills: int, rng: random.Random, args: argparse.Namespace) -> list[dict]:
    config, _ = make_study(base, args.cases, args.rec_subjects)
    # every run writes to the same folder (the report names it), the reference moved aside
    out = base / "study-out"
    (base / "study.toml").write_text(config(out))
    code, cold = nehmap("study", str(base / "study.toml"))
    reference = study_outputs(out)
    out.rename(base / "study-ref")
    # a second uninterrupted run times the kills (the first pays one-off start-up costs)
    _, seconds = nehmap("study", str(base / "study.toml"))
    assert study_outputs(out) == reference, "two uninterrupted study runs differ"
    shutil.rmtree(out)
    print(
        f"study reference: status {code}, {cold:.0f} s cold, {seconds:.0f} s warm, "
        f"{len(reference)} files compared",
        flush=True,
    )
    delays = [rng.uniform(0.05, 0.97) * seconds for _ in range(kills)]
    return kill_study_trials("study", [str(base / "study.toml")], out, reference, delays)


def kill_study_trials(
    command: str,
    study_args: list[str],
    out: Path,
    reference: dict[str, str],
    delays: list[float],
    aimed: list[str] | None = None,
    armed_by: list[Callable[[], bool] | None] | None = None,
) -> list[dict]:
    """For each delay (s): run ``nehmap study STUDY_ARGS``, SIGKILL it then, note the
    stage it reached, run it again to the end and compare with ``reference``; the
    output folder ``out`` is removed after each trial. ``aimed``: the stage each kill
    was meant for, recorded beside the stage it landed in. ``armed_by[k]``: kill k's
    delay counts from the moment that test first holds (see ``nehmap``)."""
    rows = []
    for k, delay in enumerate(delays):
        trigger = armed_by[k] if armed_by else None
        status, elapsed = nehmap("study", *study_args, kill_after=delay, armed_by=trigger)
        stage = study_stage(out)
        code2, _ = nehmap("study", *study_args)
        # kill_s: seconds after the start at which the kill was sent (or the run ended)
        row = {"command": command, "killed": status == -signal.SIGKILL, "kill_s": round(elapsed, 1)}
        if aimed:
            row["aimed"] = aimed[k]
        row |= {
            "stage": stage,
            "rerun_status": code2,
            "identical": study_outputs(out) == reference,
            "leftovers": leftovers(out),
        }
        rows.append(row)
        print(row, flush=True)
        shutil.rmtree(out)
    return rows


STAGE_GROUPS = {"segment": "segmentation", "measure": "measurement",
                "recurrence": "registration", "tables": "report", "report": "report"}  # fmt: skip


def stage_timings(stdout: str) -> list[tuple[str, float]]:
    """(stage, seconds) in order, from the stage timings ``nehmap study`` prints."""
    timings = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "s" and line.startswith("  "):
            try:
                timings.append((" ".join(parts[:-2]), float(parts[-2])))
            except ValueError:
                continue
    return timings


def stage_windows(stdout: str, wall: float) -> dict[str, tuple[float, float]]:
    """Seconds after the process started at which each stage group ran, from the
    stage timings ``nehmap study`` prints; start-up is the wall time the stages leave."""
    timings = stage_timings(stdout)
    t = max(wall - sum(sec for _, sec in timings), 0.0)
    windows: dict[str, tuple[float, float]] = {}
    for stage, sec in timings:
        group = STAGE_GROUPS[stage.split()[0]]
        lo = windows.get(group, (t, t))[0]
        windows[group] = (lo, t + sec)
        t += sec
    return windows


def trial_demo(base: Path, kills: int, rng: random.Random, args: argparse.Namespace) -> list[dict]:
    """Kills of ``nehmap study`` on the ``nehmap demo`` cohort and shipped weights, spread
    over the stages: kill k goes to stage group k mod 4 (segmentation, measurement,
    registration, report), at a moment drawn uniformly inside that stage's window of an
    uninterrupted run."""
    demo = base / "demo"
    sizes = [
        "--perfusion-cases",
        str(args.demo_perfusion),
        "--recurrence-cases",
        str(args.demo_recurrence),
    ]
    code, cold = nehmap("demo", "--out", str(demo), "--no-progress", *sizes)
    config = demo / "study.toml"
    out = demo / "study"
    if args.demo_threads:
        # ANTs' Mattes metric sums per thread: bit-identical registrations need 1 thread
        text = config.read_text()
        config.write_text(text.replace("threads = 2", f"threads = {args.demo_threads}"))
        shutil.rmtree(out)
        code, cold = nehmap("study", str(config), "--no-progress")
    reference = study_outputs(out)
    out.rename(demo / "study-ref")
    printed: list[str] = []
    _, seconds = nehmap("study", str(config), "--no-progress", stdout=printed)
    assert study_outputs(out) == reference, "two uninterrupted study runs differ"
    shutil.rmtree(out)
    windows = stage_windows(printed[0], seconds)
    print(
        f"demo study reference: status {code}, {cold:.0f} s cold (with the cohort), "
        f"{seconds:.0f} s warm, {len(reference)} files compared; stage windows (s): "
        + ", ".join(f"{g} {lo:.0f}-{hi:.0f}" for g, (lo, hi) in windows.items()),
        flush=True,
    )
    groups = [g for g in ("segmentation", "measurement", "registration", "report") if g in windows]
    aimed = [groups[k % len(groups)] for k in range(kills)]
    # Measurement and report last seconds while whole runs vary by tens of seconds, so a
    # kill aimed at one of them counts from its first output on disk (work/measure; the
    # first table, written once the tables stage has finished), over the stage's length.
    timings = stage_timings(printed[0])
    short = {
        "measurement": (
            sum(sec for stage, sec in timings if stage == "measure"),
            lambda: (out / "work" / "measure").exists(),
        ),
        "report": (
            sum(sec for stage, sec in timings if stage == "report"),
            lambda: any((out / "tables").glob("*.csv")),
        ),
    }
    delays = [
        rng.uniform(0.0, 0.8 * short[group][0]) if group in short else rng.uniform(*windows[group])
        for group in aimed
    ]
    armed = [short[group][1] if group in short else None for group in aimed]
    study_args = [str(config), "--no-progress"]
    return kill_study_trials("study (demo)", study_args, out, reference, delays, aimed, armed)


# --------------------------------------------------------------------------- segment


def segment_outputs(out: Path) -> dict[str, str]:
    import nibabel as nib
    import numpy as np

    result = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        key = str(p.relative_to(out))
        if p.name.endswith(".nii.gz"):
            img = nib.load(p)
            body = np.asarray(img.dataobj).tobytes() + img.header.binaryblock
            result[key] = hashlib.sha256(body).hexdigest()
        elif p.suffix == ".json":
            record = json.loads(p.read_text())
            for volatile in ("created", "timings", "seconds", "date", "time"):
                record.pop(volatile, None)
            result[key] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        else:
            result[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return result


def trial_segment(
    base: Path, kills: int, rng: random.Random, args: argparse.Namespace
) -> list[dict]:
    cohort = base / "upenn"
    if not cohort.exists():
        make_study(base, args.cases, args.rec_subjects)
    models = ",".join(str(base / "models" / n) for n in ("tiny-paunet", "tiny-unetrpp"))
    out = base / "seg-out"
    code, _ = nehmap("segment", str(cohort), "-o", str(out), "--models", models)
    reference = segment_outputs(out)
    out.rename(base / "seg-ref")
    _, seconds = nehmap("segment", str(cohort), "-o", str(out), "--models", models)
    assert segment_outputs(out) == reference, "two uninterrupted segment runs differ"
    shutil.rmtree(out)
    print(f"segment reference: status {code}, {seconds:.0f} s, {len(reference)} files")
    rows = []
    for _ in range(kills):
        delay = rng.uniform(0.05, 0.97) * seconds
        status, _ = nehmap(
            "segment", str(cohort), "-o", str(out), "--models", models, kill_after=delay
        )
        done = len(list(out.glob("*/*_nehmap.json")))
        code2, _ = nehmap("segment", str(cohort), "-o", str(out), "--models", models)
        row = {
            "command": "segment",
            "killed": status == -signal.SIGKILL,
            "kill_s": round(delay, 1),
            "stage": f"{done} cases done",
            "rerun_status": code2,
            "identical": segment_outputs(out) == reference,
            "leftovers": leftovers(out),
        }
        rows.append(row)
        print(row, flush=True)
        shutil.rmtree(out)
    return rows


# --------------------------------------------------------------------------- train


def weights_digest(path: Path) -> str:
    """sha256 of every tensor's bytes (by name) and of the metadata, key-sorted.

    The file bytes themselves are not compared: safetensors writes its metadata
    dictionary in an order that varies between processes.
    """
    from safetensors import safe_open

    h = hashlib.sha256()
    with safe_open(str(path), "pt") as handle:
        h.update(json.dumps(handle.metadata(), sort_keys=True).encode())
        for key in sorted(handle.keys()):
            tensor = handle.get_tensor(key)
            h.update(key.encode() + str(tensor.dtype).encode() + tensor.numpy().tobytes())
    return h.hexdigest()


def trial_train(base: Path, kills: int, rng: random.Random, args: argparse.Namespace) -> list[dict]:
    from test_train_support import TINY_PAUNET, write_nnunet

    data = write_nnunet(base / "train-data", 3)
    kwargs = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY_PAUNET.items())
    settings = f"""
data = "{data}"
model = "paunet"
preset = "demo"
epochs = {args.epochs}
iterations_per_epoch = 3
batch_size = 2
val_fraction = 0.34
val_patches = 2
progress = false
tensorboard = false
seed = 7
device = "cpu"

[model_kwargs]
{kwargs}
"""
    (base / "train.toml").write_text(settings)
    code, seconds = nehmap(
        "train", "--config", str(base / "train.toml"), "--out", str(base / "train-ref")
    )
    reference = weights_digest(base / "train-ref" / "latest.safetensors")
    print(f"train reference: status {code}, {seconds:.0f} s, {args.epochs} epochs")
    rows = []
    for k in range(kills):
        out = base / f"train-{k}"
        delays = []
        first = True
        while True:  # kill, resume, kill... until a run finishes by itself
            delay = rng.uniform(0.1, 0.9) * seconds
            extra = [] if first else ["--resume"]
            status, ran = nehmap(
                "train",
                "--config",
                str(base / "train.toml"),
                "--out",
                str(out),
                *extra,
                kill_after=delay if len(delays) < 2 else None,
            )
            first = False
            if status == -signal.SIGKILL:
                delays.append(round(delay, 1))
                continue
            break
        final = out / "latest.safetensors"
        same = final.exists() and weights_digest(final) == reference
        rows.append(
            {
                "command": "train --resume",
                "killed": bool(delays),
                "kill_s": delays,
                "stage": f"{len(delays)} kill(s)",
                "rerun_status": status,
                "identical": same,
                "leftovers": leftovers(out),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study-kills", type=int, default=10)
    parser.add_argument(
        "--demo-kills",
        type=int,
        default=0,
        help="kills of the study on the nehmap demo cohort, spread over its stages",
    )
    parser.add_argument("--demo-perfusion", type=int, default=12, help="demo perfusion cases (12)")
    parser.add_argument(
        "--demo-threads",
        type=int,
        help="registration threads of the demo study (default: the demo's own, 2)",
    )
    parser.add_argument("--demo-recurrence", type=int, default=8, help="demo recurrence pairs (8)")
    parser.add_argument("--segment-kills", type=int, default=4)
    parser.add_argument("--train-kills", type=int, default=3)
    parser.add_argument("--cases", type=int, default=4, help="perfusion cohort cases")
    parser.add_argument("--rec-subjects", type=int, default=2, help="recurrence subjects")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--workdir", help="keep everything here (default: a temporary folder)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.workdir or tmp)
        base.mkdir(parents=True, exist_ok=True)
        rows = []
        if args.segment_kills:
            rows += trial_segment(base, args.segment_kills, rng, args)
        if args.train_kills:
            rows += trial_train(base, args.train_kills, rng, args)
        if args.study_kills:
            rows += trial_study(base, args.study_kills, rng, args)
        if args.demo_kills:
            rows += trial_demo(base, args.demo_kills, rng, args)

    def passed(row: dict) -> bool:
        return row["identical"] and not row["leftovers"] and row["rerun_status"] in (0, 1)

    killed = [r for r in rows if r["killed"]]
    ok = [r for r in rows if passed(r)]
    n_kills = sum(len(r["kill_s"]) if isinstance(r["kill_s"], list) else 1 for r in killed)
    print(f"\ntrials: {len(rows)}, {len(ok)} identical with no leftovers")
    print(
        f"kills: {n_kills} SIGKILLs in {len(killed)} trials; {sum(passed(r) for r in killed)} "
        "of those trials identical with no leftovers (the others finished before the kill)"
    )
    for command in ("study", "study (demo)", "segment", "train --resume"):
        sel = [r for r in rows if r["command"] == command]
        if sel:
            stages = sorted({str(r["stage"]) for r in sel if r["killed"]})
            print(
                f"  {command}: {sum(passed(r) for r in sel)}/{len(sel)} identical; "
                f"{sum(r['killed'] for r in sel)} killed, in stages {stages}"
            )
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
