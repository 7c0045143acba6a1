"""The per-epoch log of a run: ``log.csv`` and, when installed, TensorBoard.

``log.csv`` has one row per epoch with the columns::

    epoch, lr, train_loss, val_loss, dice_<region>... , val_metric, best_metric, seconds

(regions WT, TC, ET, NEH for tissue targets; low, high for the consensus target).
Validation columns are empty in epochs without validation. The file is rewritten
atomically after every epoch; on resume, rows after the resumed epoch (from an epoch
that was interrupted before its checkpoint) are dropped.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nehmap.io.atomic import write_text_atomic

LOG_FILE = "log.csv"


def columns(regions: Sequence[str]) -> list[str]:
    """The log's columns for these validation regions."""
    return [
        "epoch",
        "lr",
        "train_loss",
        "val_loss",
        *(f"dice_{r}" for r in regions),
        "val_metric",
        "best_metric",
        "seconds",
    ]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _parse(key: str, text: str | None) -> int | float | None:
    if text is None or text == "":
        return None
    return int(text) if key == "epoch" else float(text)


class RunLog:
    """The log of a run (rows kept in memory, file rewritten after each epoch).

    Parameters
    ----------
    folder : path
        Run folder.
    regions : sequence of str
        Validation regions (column names ``dice_<region>``).
    tensorboard : bool
        Also write TensorBoard events under ``folder/tensorboard`` when
        ``torch.utils.tensorboard`` can be imported.
    """

    def __init__(
        self, folder: str | Path, regions: Sequence[str], tensorboard: bool = True
    ) -> None:
        self.path = Path(folder) / LOG_FILE
        self.columns = columns(regions)
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional
                SummaryWriter = None  # noqa: N806
            if SummaryWriter is not None:
                self.writer = SummaryWriter(str(Path(folder) / "tensorboard"))

    def load(self, up_to_epoch: int) -> None:
        """Read the rows of epochs ``<= up_to_epoch`` from an existing ``log.csv``."""
        if not self.path.is_file():
            return
        with open(self.path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("epoch") and int(row["epoch"]) <= up_to_epoch:
                    self.rows.append({k: _parse(k, row.get(k)) for k in self.columns})

    def add(self, row: dict[str, Any]) -> None:
        """Append an epoch's row, rewrite ``log.csv``, send the scalars to TensorBoard."""
        self.rows.append({k: row.get(k) for k in self.columns})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _cell(v) for k, v in r.items()})
        write_text_atomic(self.path, buffer.getvalue())
        if self.writer is not None:
            epoch = int(row["epoch"])
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and not math.isnan(value):
                    self.writer.add_scalar(key, value, epoch)
            self.writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer, if one is open."""
        if self.writer is not None:
            self.writer.close()
