"""Spatial chance model for overlap and distance metrics between two masks.

A metric comparing a predicted region ``A`` (for example the NEH map thresholded into a
mask) with an observed region ``B`` (for example the later recurrence) only means
something against what the same metric gives when ``A`` is put somewhere at random.
:func:`spatial_null` builds that reference distribution.

Null model
----------
What is kept
    * the shape, size and voxel volume of ``A`` (up to nearest-neighbour rasterisation),
    * ``B`` exactly as given (it is never moved),
    * the brain mask as the domain in which ``A`` may lie,
    * the voxel grid and its ``spacing``.
What is randomised, independently for every null sample
    * the orientation of ``A``: a rotation drawn uniformly from SO(3) (a normalised
      4-D Gaussian vector used as a unit quaternion), applied about ``A``'s centroid in
      millimetres, so anisotropic voxels are handled correctly (a sphere in mm stays a
      sphere in mm);
    * the position of ``A``: its centroid is moved to the centre of a brain voxel drawn
      uniformly from all brain voxels.
Rasterisation
    The moved mask is built by *pulling*: every grid voxel near the moved shape is
    mapped back through the inverse rigid transform and takes the value of ``A``'s
    nearest voxel. This leaves no holes, and keeps the voxel count of ``A`` within
    rounding at its surface (a few per cent for compact shapes of a few hundred voxels).
    Only ``A``'s bounding region is touched, never the whole volume. With
    ``rotate=False`` ``A`` is shifted by a whole number of voxels (its centroid lands on
    the voxel nearest to the target), so its voxels are kept exactly.
Acceptance
    A placement is accepted when at least ``min_inside`` (default 0.95) of the moved
    voxels lie inside the brain (voxels falling off the grid count as outside);
    otherwise a new rotation and position are drawn. With ``clip_to_brain=True``
    (default) the moved voxels outside the brain are then removed, so every null mask
    lies in the brain. ``max_attempts`` bounds the number of draws per accepted sample;
    the result reports the acceptance rate.

For every accepted placement ``metric(A_moved, B, spacing)`` is evaluated. ``expected``
is the mean of these null values, ``ratio = observed / expected``, and the one-sided
p-value is ``(1 + #{null >= observed}) / (1 + n)`` for ``alternative="greater"``
(overlap-type metrics, where large means agreement) or with ``<=`` for
``alternative="less"`` (distances, where small means agreement). Ties with the observed
value (up to a relative tolerance of 1e-9) count against the hypothesis. The two-sided
p-value is twice the smaller one-sided p-value, capped at 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
from scipy.spatial.transform import Rotation

from nehmap.spacing import check_spacing
from nehmap.stats.tidy import TidyRow

__all__ = ["SpatialNullResult", "random_placement", "spatial_null"]

Metric = Callable[[np.ndarray, np.ndarray, tuple[float, ...]], float]
Alternative = Literal["greater", "less", "two-sided"]

_BATCH = 256  # random rotations / positions drawn at a time


@dataclass(frozen=True, eq=False)
class SpatialNullResult(TidyRow):
    """Outcome of :func:`spatial_null`.

    Attributes
    ----------
    observed : float
        ``metric(A, B, spacing)`` for the masks as given.
    expected : float
        Mean of the null values (the metric expected by chance).
    ratio : float
        ``observed / expected`` (``inf`` or ``nan`` when ``expected`` is 0).
    p_value : float
        p-value in the direction of ``alternative``, with the ``+1`` correction.
    alternative : str
        ``"greater"``, ``"less"`` or ``"two-sided"``.
    null : numpy.ndarray
        The finite null values, in the order drawn.
    null_sd : float
        Standard deviation of the null values.
    n : int
        Number of finite null values (those the p-value rests on).
    n_invalid : int
        Null samples for which the metric returned NaN or inf (excluded, with a warning).
    n_attempts : int
        Placements drawn, accepted or not.
    acceptance_rate : float
        Accepted placements / attempts.
    min_inside : float
        Share of the moved ``A`` required inside the brain.
    rotate : bool
        Whether random rotations were applied (otherwise translations only).
    clip_to_brain : bool
        Whether moved voxels outside the brain were removed.
    metric : str
        Name of the metric function.
    """

    observed: float
    expected: float
    ratio: float
    p_value: float
    alternative: str
    null: np.ndarray = field(repr=False)
    null_sd: float
    n: int
    n_invalid: int
    n_attempts: int
    acceptance_rate: float
    min_inside: float
    rotate: bool
    clip_to_brain: bool
    metric: str

    def to_dict(self) -> dict[str, Any]:
        """Scalar fields as a dictionary, the metric first (the null array is left out)."""
        scalars = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "null"}
        return {"metric": scalars.pop("metric"), **scalars}


class _Placer:
    """Precomputed state for drawing random rigid placements of a mask inside a brain."""

    def __init__(
        self,
        A: np.ndarray,
        brain: np.ndarray,
        spacing: np.ndarray,
        *,
        min_inside: float,
        rotate: bool,
        clip_to_brain: bool,
    ) -> None:
        if A.ndim != 3:
            raise ValueError(f"masks must be 3-D, got {A.ndim}-D")
        if A.shape != brain.shape:
            raise ValueError(f"A {A.shape} and brain_mask {brain.shape} differ in shape")
        if not 0.0 <= min_inside <= 1.0:
            raise ValueError(f"min_inside must lie in [0, 1], got {min_inside}")
        idx = np.argwhere(A)
        if idx.shape[0] == 0:
            raise ValueError("A is empty: there is nothing to place")
        self.brain_flat = np.flatnonzero(brain)
        if self.brain_flat.size == 0:
            raise ValueError("brain_mask is empty: there is nowhere to place A")
        self.shape = np.asarray(A.shape)
        self.brain = brain
        self.brain_ravel = np.ascontiguousarray(brain).ravel()
        self.spacing = spacing
        self.min_inside = float(min_inside)
        self.rotate = rotate
        self.clip_to_brain = clip_to_brain
        self.idx = idx
        lo = idx.min(axis=0)
        hi = idx.max(axis=0) + 1
        self.crop_lo = lo
        self.crop = A[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        pos = idx * spacing
        self.centroid = pos.mean(axis=0)
        self.rel = pos - self.centroid  # voxel centres of A relative to the centroid, mm

    def draw_batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Random rotation matrices (size, 3, 3) and target centroids in mm (size, 3)."""
        if self.rotate:
            q = rng.standard_normal((size, 4))
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            mats = Rotation.from_quat(q).as_matrix()
        else:
            mats = np.broadcast_to(np.eye(3), (size, 3, 3))
        flat = self.brain_flat[rng.integers(0, self.brain_flat.size, size=size)]
        target = np.column_stack(np.unravel_index(flat, self.brain.shape)) * self.spacing
        return mats, target

    def _pull(self, rot: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Voxel indices of A rotated by ``rot`` about its centroid, centroid at ``target``."""
        sp = self.spacing
        # Bounding box of the moved voxel centres, in voxels, one voxel of margin.
        fwd = (self.rel @ rot.T + target) / sp
        box_lo = np.floor(fwd.min(axis=0)).astype(np.int64) - 1
        box_hi = np.ceil(fwd.max(axis=0)).astype(np.int64) + 2
        grid = np.stack(
            np.meshgrid(
                *(np.arange(a, b) for a, b in zip(box_lo, box_hi, strict=True)),
                indexing="ij",
            ),
            axis=-1,
        ).reshape(-1, 3)
        # Pull: map every candidate voxel back into A's frame, take the nearest voxel.
        src = ((grid * sp - target) @ rot + self.centroid) / sp
        src = np.floor(src + 0.5).astype(np.int64) - self.crop_lo
        ok = np.all((src >= 0) & (src < self.crop.shape), axis=1)
        hit = np.zeros(grid.shape[0], dtype=bool)
        s = src[ok]
        hit[ok] = self.crop[s[:, 0], s[:, 1], s[:, 2]]
        return grid[hit]

    def place(self, rot: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        """Flat indices of the moved mask, or None when the placement is rejected."""
        if self.rotate:
            moved = self._pull(rot, target)
        else:
            # Translation only: shift A's voxels by a whole number of voxels, exactly.
            shift = np.floor((target - self.centroid) / self.spacing + 0.5).astype(np.int64)
            moved = self.idx + shift
        n_moved = moved.shape[0]
        if n_moved == 0:
            return None
        on_grid = np.all((moved >= 0) & (moved < self.shape), axis=1)
        moved = moved[on_grid]
        flat = np.ravel_multi_index(moved.T, tuple(self.shape))
        in_brain = self.brain_ravel[flat]
        if np.count_nonzero(in_brain) < self.min_inside * n_moved - 1e-9:
            return None
        if self.clip_to_brain:
            flat = flat[in_brain]
        if flat.size == 0:
            return None
        return flat


def _as_bool(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != bool:
        arr = arr != 0
    return arr


def random_placement(
    A: np.ndarray,
    brain_mask: np.ndarray,
    spacing: Sequence[float],
    seed: int | np.random.Generator | None = None,
    *,
    min_inside: float = 0.95,
    rotate: bool = True,
    clip_to_brain: bool = True,
    max_attempts: int = 1000,
) -> np.ndarray:
    """One draw of the spatial null model: ``A`` rotated and moved at random in the brain.

    See the module documentation for the model. Parameters are as in
    :func:`spatial_null`.

    Returns
    -------
    numpy.ndarray of bool
        The moved mask, on the grid of ``A``.

    Raises
    ------
    RuntimeError
        When no placement was accepted in ``max_attempts`` draws.
    """
    A = _as_bool(A)
    brain = _as_bool(brain_mask)
    sp = np.asarray(check_spacing(spacing, A.ndim))
    placer = _Placer(
        A, brain, sp, min_inside=min_inside, rotate=rotate, clip_to_brain=clip_to_brain
    )
    rng = np.random.default_rng(seed)
    for _ in range(max_attempts):
        mats, targets = placer.draw_batch(rng, 1)
        flat = placer.place(mats[0], targets[0])
        if flat is not None:
            out = np.zeros(A.shape, dtype=bool)
            out.ravel()[flat] = True
            return out
    raise RuntimeError(
        f"no placement with at least {min_inside:.0%} of A inside the brain in "
        f"{max_attempts} attempts; lower min_inside or check the brain mask"
    )


def spatial_null(
    A: np.ndarray,
    B: np.ndarray,
    brain_mask: np.ndarray,
    spacing: Sequence[float],
    metric: Metric,
    n: int = 1000,
    seed: int | np.random.Generator | None = 0,
    alternative: Alternative = "greater",
    *,
    min_inside: float = 0.95,
    rotate: bool = True,
    clip_to_brain: bool = True,
    max_attempts: int = 100,
) -> SpatialNullResult:
    """Compare ``metric(A, B)`` with its distribution over random rigid placements of ``A``.

    Parameters
    ----------
    A : numpy.ndarray, 3-D
        The mask that is moved (e.g. the predicted NEH region). Non-zero means inside.
    B : numpy.ndarray, 3-D
        The fixed reference mask (e.g. the recurrence), same shape as ``A``.
    brain_mask : numpy.ndarray, 3-D
        Domain where ``A`` may be placed, same shape as ``A``.
    spacing : sequence of float
        Voxel size in mm along each array axis, in array-axis order.
    metric : callable
        ``metric(A_moved, B, spacing) -> float`` with boolean masks and ``spacing`` as a
        tuple of floats.
    n : int, default 1000
        Number of null placements.
    seed : int, numpy Generator or None, default 0
        Seed of the placements; the same seed gives the same null.
    alternative : {"greater", "less", "two-sided"}, default "greater"
        ``"greater"`` for overlap-type metrics (agreement means large values),
        ``"less"`` for distances (agreement means small values).
    min_inside : float, default 0.95
        Share of the moved ``A`` that must lie inside the brain for a placement to count.
    rotate : bool, default True
        Apply a uniformly random rotation; ``False`` moves ``A`` by translation only.
    clip_to_brain : bool, default True
        Remove moved voxels that fall outside the brain before evaluating the metric.
    max_attempts : int, default 100
        Draws allowed per accepted placement on average: the run stops with an error
        after ``max_attempts * n`` draws.

    Returns
    -------
    SpatialNullResult

    Raises
    ------
    ValueError
        For masks of different shapes, an empty ``A`` or brain, bad ``spacing``, or a
        non-finite observed metric.
    RuntimeError
        When too few placements are accepted (see ``max_attempts``).

    Warns
    -----
    RuntimeWarning
        When the metric returned NaN or inf for some null samples (they are excluded).
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(
            f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}"
        )
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    A = _as_bool(A)
    B = _as_bool(B)
    brain = _as_bool(brain_mask)
    if B.shape != A.shape:
        raise ValueError(f"A {A.shape} and B {B.shape} differ in shape")
    sp_tuple = check_spacing(spacing, A.ndim)
    sp = np.asarray(sp_tuple)
    placer = _Placer(
        A, brain, sp, min_inside=min_inside, rotate=rotate, clip_to_brain=clip_to_brain
    )
    observed = float(metric(A, B, sp_tuple))
    if not np.isfinite(observed):
        raise ValueError(f"the metric of the observed masks is not finite ({observed})")

    rng = np.random.default_rng(seed)
    values = np.empty(n)
    accepted = 0
    attempts = 0
    limit = max(int(max_attempts), 1) * n
    while accepted < n:
        mats, targets = placer.draw_batch(rng, _BATCH)
        for rot, target in zip(mats, targets, strict=True):
            if accepted == n:
                break
            if attempts >= limit:
                raise RuntimeError(
                    f"only {accepted} of {n} placements accepted in {attempts} attempts "
                    f"(acceptance rate {accepted / attempts:.3g}); lower min_inside "
                    "(share of A inside the brain) or raise max_attempts"
                )
            attempts += 1
            flat = placer.place(rot, target)
            if flat is None:
                continue
            moved = np.zeros(A.shape, dtype=bool)
            moved.ravel()[flat] = True
            values[accepted] = float(metric(moved, B, sp_tuple))
            accepted += 1

    finite = np.isfinite(values)
    n_invalid = int(n - finite.sum())
    if n_invalid:
        warnings.warn(
            f"the metric was not finite for {n_invalid} of {n} null placements; "
            "they are excluded from the null",
            RuntimeWarning,
            stacklevel=2,
        )
    null = values[finite]
    if null.size == 0:
        raise ValueError("the metric was not finite for any null placement")
    expected = float(null.mean())
    close = np.isclose(null, observed, rtol=1e-9, atol=0.0)
    denom = null.size + 1
    p_greater = (int(np.count_nonzero((null >= observed) | close)) + 1) / denom
    p_less = (int(np.count_nonzero((null <= observed) | close)) + 1) / denom
    if alternative == "greater":
        p = p_greater
    elif alternative == "less":
        p = p_less
    else:
        p = min(1.0, 2.0 * min(p_greater, p_less))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(observed) / np.float64(expected))
    return SpatialNullResult(
        observed=observed,
        expected=expected,
        ratio=ratio,
        p_value=float(p),
        alternative=alternative,
        null=null,
        null_sd=float(null.std(ddof=1)) if null.size > 1 else float("nan"),
        n=int(null.size),
        n_invalid=n_invalid,
        n_attempts=attempts,
        acceptance_rate=accepted / attempts,
        min_inside=float(min_inside),
        rotate=bool(rotate),
        clip_to_brain=bool(clip_to_brain),
        metric=getattr(metric, "__name__", type(metric).__name__),
    )
