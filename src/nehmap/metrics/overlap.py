"""Volume-overlap metrics of two binary masks: Dice and Jaccard.

With :math:`P` the predicted and :math:`R` the reference set of foreground voxels,

.. math::

    \\mathrm{Dice}(P, R) = \\frac{2\\,|P \\cap R|}{|P| + |R|}, \\qquad
    \\mathrm{Jaccard}(P, R) = \\frac{|P \\cap R|}{|P \\cup R|}
    = \\frac{\\mathrm{Dice}}{2 - \\mathrm{Dice}}.

Both are voxel counts, so they do not depend on the voxel spacing.

Empty masks
-----------
* both masks empty: Dice = Jaccard = 1 (the prediction correctly says "absent");
* exactly one empty: Dice = Jaccard = 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from nehmap.metrics._validation import check_pair

__all__ = ["dice", "jaccard"]


def _counts(pred: ArrayLike, ref: ArrayLike) -> tuple[int, int, int]:
    """Return ``(|pred & ref|, |pred|, |ref|)`` for validated binary masks."""
    p, r = check_pair(pred, ref)
    n_p = int(np.count_nonzero(p))
    n_r = int(np.count_nonzero(r))
    if n_p == 0 or n_r == 0:
        return 0, n_p, n_r
    return int(np.count_nonzero(np.logical_and(p, r))), n_p, n_r


def dice(pred: ArrayLike, ref: ArrayLike) -> float:
    """Dice similarity coefficient of two binary masks.

    Parameters
    ----------
    pred, ref : array_like of bool or {0, 1}, shape (...)
        Predicted and reference masks of the same shape (any number of dimensions).

    Returns
    -------
    float
        :math:`2|P \\cap R| / (|P| + |R|)` in [0, 1]; 1.0 when both masks are empty and
        0.0 when exactly one is empty.

    Raises
    ------
    ValueError
        If the shapes differ or a mask holds values other than 0/1/False/True.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> dice(a, b)
    0.5
    """
    inter, n_p, n_r = _counts(pred, ref)
    if n_p + n_r == 0:
        return 1.0
    return 2.0 * inter / (n_p + n_r)


def jaccard(pred: ArrayLike, ref: ArrayLike) -> float:
    """Jaccard index (intersection over union) of two binary masks.

    Takes the masks :func:`dice` takes and raises as it does. Returns
    :math:`|P \\cap R| / |P \\cup R|` in [0, 1]; 1.0 when both masks are empty and 0.0
    when exactly one is empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> round(jaccard(a, b), 4)
    0.3333
    """
    inter, n_p, n_r = _counts(pred, ref)
    union = n_p + n_r - inter
    if union == 0:
        return 1.0
    return inter / union
