"""Running per-case tasks: in this process, in local worker processes, or on Dask.

A task is a top-level function of one picklable item that writes its results to disk
(atomically) and returns a :class:`TaskResult`. The same function runs on every
backend, so a study gives the same files whichever runs it. A task that raises is
recorded as failed with its message; the others go on.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from nehmap.bars import case_bar


@dataclass(frozen=True)
class TaskResult:
    """What happened to one task."""

    key: str
    status: str  # "done", "skipped" or "failed"
    message: str = ""

    @property
    def failed(self) -> bool:
        """Whether the task ended in an error."""
        return self.status == "failed"


def _key_of(item: Any) -> str:
    return str(getattr(item, "key", item))


def safe_call(fn: Callable[[Any], TaskResult], item: Any) -> TaskResult:
    """Run ``fn(item)``; an exception becomes a failed :class:`TaskResult`."""
    try:
        return fn(item)
    except Exception as exc:  # noqa: BLE001 - one failing case must not stop a cohort
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return TaskResult(_key_of(item), "failed", detail)


def _init_worker(threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def run_tasks(
    fn: Callable[[Any], TaskResult],
    items: Sequence[Any],
    *,
    workers: int = 1,
    scheduler: str = "",
    desc: str = "",
    progress: bool = True,
) -> list[TaskResult]:
    """Run ``fn`` over ``items`` and return the results in the order of ``items``.

    Parameters
    ----------
    fn : Callable[[Any], TaskResult]
        A top-level (picklable) function item -> TaskResult.
    items : Sequence[Any]
        The work.
    workers : int
        Local worker processes (1 = run here, in order).
    scheduler : str
        A Dask scheduler address (``tcp://host:8786``); overrides ``workers``.
    desc : str
        Progress bar label.
    progress : bool
        Show a progress bar (on stderr).
    """
    bar = case_bar(None, desc, progress, total=len(items))
    results: dict[int, TaskResult] = {}
    try:
        if scheduler:
            from distributed import Client
            from distributed import as_completed as dask_completed

            with Client(scheduler) as client:
                futures = client.map(safe_call, [fn] * len(items), items, pure=False)
                index = {f.key: i for i, f in enumerate(futures)}
                for future in dask_completed(futures):
                    results[index[future.key]] = future.result()
                    bar.update()
        elif workers > 1 and len(items) > 1:
            import multiprocessing as mp

            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(
                workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(threads,),
            ) as pool:
                pending = {pool.submit(safe_call, fn, item): i for i, item in enumerate(items)}
                for future in as_completed(pending):
                    results[pending[future]] = future.result()
                    bar.update()
        else:
            for i, item in enumerate(items):
                results[i] = safe_call(fn, item)
                bar.update()
    finally:
        bar.close()
    return [results[i] for i in range(len(items))]
