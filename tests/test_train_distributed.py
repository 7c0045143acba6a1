"""Two training processes under torchrun (gloo on the CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nehmap.models.checkpoint import load_checkpoint
from test_train_support import TINY_PAUNET, write_nnunet


def test_two_processes_train_one_run(tmp_path: Path) -> None:
    data = write_nnunet(tmp_path / "data", 3)
    run = tmp_path / "run"
    model_args = [f"--model-arg={k}={v}" for k, v in TINY_PAUNET.items() if k != "patch_size"]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "nehmap.train", "--data", str(data), "--out", str(run), "--model", "paunet",
        *model_args, "--patch-size", "16", "--epochs", "2", "--iterations", "2",
        "--val-fraction", "0.34", "--no-progress", "--no-tensorboard", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("best validation mean Dice") == 1  # only rank 0 reports
    assert "x 2 processes" in done.stdout
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[2].startswith("2,")
    network, card = load_checkpoint(run / "latest")
    assert "batch 2 x 2 processes" in card.training_data
    assert sorted(p.suffix for p in (run / "cache").glob("*.json")) == [".json"] * 3
