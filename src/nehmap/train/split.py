"""The seeded split of a collection's cases into training and validation sets.

The split is by case (a scan never contributes to both sides), drawn from the seed
alone: the case ids are sorted, then permuted by a generator seeded from ``seed``; the
first ``n_val = max(1, round(n * val_fraction))`` are held out. It is saved with the
run as ``split.json`` and reused when the run is resumed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nehmap.errors import NehmapInputError
from nehmap.io.atomic import write_text_atomic
from nehmap.train.seeding import SPLIT_STREAM, seed_sequence

SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class Split:
    """Training and validation case ids (each sorted)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    seed: int
    val_fraction: float

    def to_json(self) -> str:
        """The split as indented JSON (seed, validation fraction, counts and case lists)."""
        return json.dumps(
            {
                "seed": self.seed,
                "val_fraction": self.val_fraction,
                "n_train": len(self.train),
                "n_val": len(self.val),
                "train": list(self.train),
                "val": list(self.val),
            },
            indent=2,
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``split.json`` into ``folder`` (atomically)."""
        return write_text_atomic(Path(folder) / SPLIT_FILE, self.to_json() + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> Split:
        """Read ``split.json`` from a run folder.

        Raises
        ------
        NehmapInputError
            If the file is missing or malformed.
        """
        path = Path(folder) / SPLIT_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                tuple(data["train"]),
                tuple(data["val"]),
                int(data["seed"]),
                float(data["val_fraction"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NehmapInputError(
                path,
                f"cannot read the run's split ({exc}).",
                "Restore split.json, or start a new run in another folder.",
            ) from None


def split_cases(case_ids: Sequence[str], val_fraction: float, seed: int) -> Split:
    """Split case ids into training and validation sets, reproducibly from ``seed``.

    Parameters
    ----------
    case_ids : sequence of str
        The labelled cases (any order; duplicates are an error).
    val_fraction : float
        Share of cases held out, in (0, 1).
    seed : int
        Seed of the permutation.

    Raises
    ------
    NehmapInputError
        With fewer than 2 cases, or when the split would leave either side empty;
        the message gives the counts and what to do.
    """
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("case ids must be unique.")
    n = len(ids)
    if n < 2:
        raise NehmapInputError(
            None,
            f"only {n} labelled case(s) found; training needs at least 2 (one to train on, "
            "one to validate on).",
            "Point --data at a collection with more labelled cases.",
        )
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise NehmapInputError(
            None,
            f"--val-fraction {val_fraction:g} of {n} labelled cases leaves no case to train "
            f"on ({n_val} would be held out for validation).",
            f"Use a --val-fraction below {(n - 1) / n:.2f}, or add cases.",
        )
    order = np.random.default_rng(seed_sequence(seed, SPLIT_STREAM)).permutation(n)
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return Split(tuple(train), tuple(val), int(seed), float(val_fraction))
