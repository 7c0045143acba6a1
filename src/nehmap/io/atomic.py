"""Atomic writes: a temporary file beside the target, then an atomic rename.

A reader never sees a half-written output, and a crash (even SIGKILL) leaves either
the previous file or the new one, plus at worst a hidden ``.*.tmp-*`` file.
:func:`fsync_dir` makes a rename durable; :func:`sha256_file` checks what was written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from nehmap.errors import DiskFullError, OutputError

_COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz", ".csv.gz")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def split_suffix(path: Path) -> tuple[str, str]:
    """Split a file name into stem and suffix, keeping compound suffixes like ``.nii.gz``."""
    name = path.name
    for suffix in _COMPOUND_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    return path.stem, path.suffix


def temporary_sibling(path: Path) -> Path:
    """A hidden temporary path in the same folder as ``path``, with the same suffix."""
    stem, suffix = split_suffix(path)
    return path.with_name(f".{stem}.tmp-{secrets.token_hex(4)}{suffix}")


def check_not_input(path: str | Path, inputs: Iterable[str | Path] = ()) -> None:
    """Refuse to write ``path`` if it is one of ``inputs`` (same file, links resolved).

    Raises
    ------
    OutputError
        The message names the input that would be overwritten.
    """
    target = Path(path).resolve()
    for candidate in inputs:
        src = Path(candidate)
        if src.resolve() == target or (
            src.exists() and target.exists() and os.path.samefile(src, target)
        ):
            raise OutputError(
                f"{path}: refusing to write an output over the input file {candidate}. "
                "Choose an output folder different from the input folder."
            )


@contextlib.contextmanager
def atomic_path(path: str | Path, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Context manager giving a temporary path to write; renamed to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched. A
    full file system (ENOSPC, EDQUOT) becomes a :class:`~nehmap.errors.DiskFullError`
    naming the file.

    Example::

        with atomic_path("out/case_seg.nii.gz") as tmp:
            nib.save(img, tmp)
    """
    target = Path(path)
    check_not_input(target, inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno not in _NO_SPACE:
            raise
        raise DiskFullError(
            f"{target}: cannot be written: the file system holding {target.parent} is full "
            f"({exc.strerror}). The partial file was removed and the previous version, if "
            "any, is intact. Free some space (or choose another output folder) and run the "
            "command again; finished outputs are kept."
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path.

    File names that are not valid UTF-8 (held by Python as surrogate escapes) are
    written back as their original bytes.
    """
    with atomic_path(path, inputs) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    return Path(path)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; best effort, never raises."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks of ``chunk`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
