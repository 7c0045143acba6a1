"""Progress bars over cases: one look for every long loop of nehmap.

Library functions take ``progress: bool`` and draw their bar with :func:`case_bar`
(tqdm, on standard error, counted in cases); the commands decide whether to draw one
(only on a terminal: :func:`nehmap.commands.options.show_progress`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["case_bar"]


def case_bar(
    items: Iterable[T] | None, desc: str, enabled: bool, *, total: int | None = None
) -> Any:
    """A tqdm bar over ``items`` (or, with ``items=None``, one updated by hand to ``total``).

    Iterating it yields ``items`` whether or not the bar is drawn (``enabled``); its
    ``write`` prints a line above the bar.
    """
    from tqdm import tqdm  # lazy: only loops that draw bars pay for the import

    return tqdm(items, desc=desc, total=total, unit="case", disable=not enabled, file=sys.stderr)
