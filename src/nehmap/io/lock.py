"""One nehmap run per output folder: an exclusive lock file, and a writability check.

:func:`output_lock` holds ``<folder>/.nehmap.lock`` for the length of a command. The
lock is an advisory ``flock`` on that file, which the kernel releases when its holder
ends in any way, SIGKILL included; the file itself records the holder (PID, host,
command, start time) so that a second run into the same folder can say who holds it.
A lock file left behind by a run that died is stale: the next run sees that nobody
holds the ``flock``, takes the file over and says so. Whoever takes the lock also
removes the unfinished temporary files (``.*.tmp-XXXXXXXX*``) of the atomic writer
that a killed run may have left.

Before taking the lock, the folder is created if needed and a probe file is written
and removed in it, so a folder that cannot be written (permissions, read-only or full
file system) is refused before any work starts, as is an output folder that is, or lies
inside, a folder the inputs are read from (:func:`check_outside_inputs`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nehmap.errors import OutputError

LOCK_NAME = ".nehmap.lock"
"""Name of the lock file inside an output folder."""


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove that a file can be written in it.

    Raises
    ------
    OutputError
        The message names the folder and why it cannot be written.
    """
    target = Path(folder)
    probe = target / f".nehmap-write-probe-{os.getpid()}"
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"nehmap")
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(
            f"{target}: the output folder cannot be written ({exc.strerror or exc}); "
            "nothing was done. Choose a folder you can write to (-o), or free space on its "
            "file system."
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return target


def check_outside_inputs(folder: str | Path, input_folders: list[Path]) -> None:
    """Refuse an output folder that is, or lies inside, one of ``input_folders``.

    Raises
    ------
    OutputError
        The message names both folders.
    """
    target = Path(folder).resolve()
    for source in input_folders:
        root = Path(source).resolve()
        if target == root or root in target.parents:
            raise OutputError(
                f"{folder}: the output folder is inside the input collection {source}; "
                "nehmap never writes into its inputs. Choose an output folder outside it."
            )


def input_folders(collection: Any) -> list[Path]:
    """The folders a collection reads from: its root folder, or (for a manifest) the
    folders of its files."""
    root = Path(collection.root)
    if root.is_dir():
        return [root]
    return sorted({Path(p).parent for case in collection.cases for p in case.paths})


_TEMPORARY = re.compile(r"^\..+\.tmp-[0-9a-f]{8}(\..*)?$")


def sweep_temporaries(folder: Path) -> int:
    """Remove the atomic writer's unfinished temporary files (``.*.tmp-XXXXXXXX*``) under
    ``folder``, left by a run that was killed mid-write; returns how many.

    Only safe while holding the folder's lock: nobody else is writing there.
    """
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            if _TEMPORARY.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


def _holder(lock_path: Path) -> dict:
    try:
        return json.loads(lock_path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another nehmap run"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return (
        f"nehmap run PID {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"({holder.get('command', '?')}, started {when})"
    )


@contextlib.contextmanager
def output_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold the output folder's lock for the ``with`` block (see the module docstring).

    Parameters
    ----------
    folder : str | Path
        The output folder (created if needed).
    command : str
        What holds it, for the message another run will print.

    Yields
    ------
    Path
        The lock file's path.

    Raises
    ------
    OutputError
        The folder cannot be written, or another live run holds it.
    """
    target = check_writable(folder)
    lock_path = target / LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise
            raise OutputError(
                f"{target}: this output folder is in use by {_describe(_holder(lock_path))}. "
                "Two runs must not write into the same folder: wait for that run to finish, "
                f"or choose another output folder. (Lock file: {lock_path}.)"
            ) from None
        # the file may have been removed and recreated by its previous holder meanwhile
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _holder(lock_path)
    swept = sweep_temporaries(target)
    if swept:
        print(
            f"note: {target}: removed {swept} unfinished temporary file(s) left by an "
            "interrupted run.",
            file=sys.stderr,
        )
    if stale:
        print(
            f"note: {target}: took over a stale lock left by {_describe(stale)}, "
            "which ended without releasing it.",
            file=sys.stderr,
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started": time.time(),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
    try:
        yield lock_path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)
