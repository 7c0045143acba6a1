"""A run's resume state (``RUN/resume/``): writing it atomically, reading it back, RNG states.

A run folder holds two kinds of checkpoint; this module writes and reads the second,
:class:`nehmap.train.run_checkpoints.RunCheckpoints` writes the first and keeps the
order described below:

``RUN/latest`` and ``RUN/best``
    Ordinary nehmap checkpoints (``.safetensors`` weights + ``.json`` model card,
    :func:`nehmap.models.checkpoint.save_checkpoint`): the network after the last
    completed epoch and after the epoch with the best validation metric. Usable as
    they are, e.g. ``nehmap segment --models RUN/best``.

``RUN/resume/``
    The training state: ``state-EEEEE.pt`` holds tensors only (network weights,
    optimizer and gradient-scaler state, torch RNG states), written with
    :func:`torch.save` and read with ``torch.load(..., weights_only=True)``, so nothing
    but tensors and plain containers is ever unpickled; ``state.json`` holds everything
    else (epoch, best metric, early-stopping counter, Python/numpy RNG states, the
    resolved spacing) and names the ``.pt`` file with its sha256.

Writing order after an epoch: ``latest``, then ``best`` when the validation metric
improved (each atomic), then the new ``state-E.pt`` (temporary file, fsync, rename to
a new name), then ``state.json`` (temporary file, fsync, atomic replace: the commit),
then the old ``.pt`` is deleted. Whatever fails, or wherever the process is killed,
the previous ``state.json`` and the ``.pt`` it names, or the new pair, are complete,
and a partly written file is only ever a hidden temporary file. Until the commit the
run resumes from the previous epoch, repeats the interrupted one (reaching the same
weights, see :mod:`nehmap.train.seeding`) and rewrites the checkpoints.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nehmap.errors import NehmapInputError, OutputError
from nehmap.io.atomic import fsync_dir, sha256_file, temporary_sibling

RESUME_DIR = "resume"
STATE_FILE = "state.json"
STATE_FORMAT = "nehmap-train-state"
STATE_VERSION = 1


class CheckpointWriteError(OutputError):
    """A checkpoint could not be written; the message says what is still intact."""


class ResumeError(NehmapInputError):
    """A run cannot be resumed (other model or settings, missing or damaged state)."""


def state_dir(run: str | Path) -> Path:
    """The folder of a run's resumable training state (``<run>/resume``)."""
    return Path(run) / RESUME_DIR


def has_state(run: str | Path) -> bool:
    """True when ``run`` holds a resumable training state."""
    return (state_dir(run) / STATE_FILE).is_file()


def _write_bytes_atomic(path: Path, write: Any) -> None:
    """Call ``write(file_object)`` on a temporary sibling, fsync, rename onto ``path``."""
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _cpu(tree: Any) -> Any:
    """A copy of a nested container with every tensor detached on the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu").clone()
    if isinstance(tree, dict):
        return {k: _cpu(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_cpu(v) for v in tree)
    return tree


def rng_states_json() -> dict[str, Any]:
    """Python's and numpy's global RNG states as JSON-compatible values."""
    version, state, gauss = random.getstate()
    # the legacy global state, kept for third-party code that draws from it
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]  # noqa: NPY002
    return {
        "python": [version, list(state), gauss],
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }


def restore_rng_json(states: dict[str, Any]) -> None:
    """Restore :func:`rng_states_json`'s states."""
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    legacy = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    np.random.set_state(legacy)  # noqa: NPY002 - restores the legacy global state


def save_state(
    run: str | Path,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    info: dict[str, Any],
) -> Path:
    """Write the training state after ``epoch`` completed epochs (see the module docs).

    Parameters
    ----------
    run : path
        Run folder.
    epoch : int
        Completed epochs.
    model, optimizer, scaler
        The unwrapped network, its optimizer and the gradient scaler (or None).
    info : dict
        JSON-serialisable state (best metric, counters...), stored in ``state.json``.

    Returns
    -------
    Path
        The ``state.json`` written.

    Raises
    ------
    OSError
        When writing fails; the previous state is then intact.
    """
    folder = state_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "model": _cpu(model.state_dict()),
        "optimizer": _cpu(optimizer.state_dict()),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    name = f"state-{epoch:05d}.pt"
    path = folder / name
    _write_bytes_atomic(path, lambda fh: torch.save(tensors, fh))
    record = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "epoch": int(epoch),
        "state_file": name,
        "state_sha256": sha256_file(path),
        "rng": rng_states_json(),
        **info,
    }
    text = json.dumps(record, indent=1)
    _write_bytes_atomic(folder / STATE_FILE, lambda fh: fh.write(text.encode("utf-8")))
    fsync_dir(folder)
    for old in folder.glob("state-*.pt"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / STATE_FILE


def read_state_info(run: str | Path) -> dict[str, Any]:
    """The ``state.json`` record of a run.

    Raises
    ------
    ResumeError
        If it is missing or unreadable.
    """
    path = state_dir(run) / STATE_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResumeError(
            Path(run), "holds no training state to resume from.", "Start the run without --resume."
        ) from None
    except (OSError, ValueError) as exc:
        raise ResumeError(path, f"cannot be read ({exc}).") from None
    if record.get("format") != STATE_FORMAT or int(record.get("version", 0)) > STATE_VERSION:
        raise ResumeError(path, "is not a training state this nehmap can read.")
    return record


def load_state(run: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a run's training state.

    Returns
    -------
    (dict, dict)
        The ``state.json`` record and the tensors (on the CPU).

    Raises
    ------
    ResumeError
        If the state is missing, damaged (sha256 mismatch) or unreadable.
    """
    info = read_state_info(run)
    path = state_dir(run) / str(info.get("state_file", ""))
    if not path.is_file():
        raise ResumeError(path, "the training state file named in state.json is missing.")
    if sha256_file(path) != info.get("state_sha256"):
        raise ResumeError(
            path,
            "differs from the sha256 recorded in state.json (damaged or replaced).",
            "Restore the run folder, or start a new run.",
        )
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable state file
        raise ResumeError(path, f"cannot be read as a training state ({exc}).") from None
    return info, tensors


def restore_rng(info: dict[str, Any], tensors: dict[str, Any]) -> None:
    """Put back the RNG states saved with a training state."""
    torch.set_rng_state(tensors["rng_torch"])
    if tensors.get("rng_cuda") and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(tensors["rng_cuda"])
    if "rng" in info:
        restore_rng_json(info["rng"])


def describe_os_error(exc: OSError) -> str:
    """An OSError in words, with what to do about a full disk or quota."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"{text} (the disk is full)"
    return text
