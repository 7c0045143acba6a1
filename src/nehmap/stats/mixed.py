"""Linear mixed-effects model of a measurement across labels, with a random intercept.

The model is

    value ~ C(label) + (1 | group)

fitted with :class:`statsmodels.regression.mixed_linear_model.MixedLM` (REML by default):
one fixed effect per label level (treatment coding against a reference level) and a
random intercept per group (patient), which accounts for the repeated measurements of a
patient across labels. The typical use is a perfusion value (e.g. rCBV) per patient and
tumour label, comparing NEH with edema.

Reported per contrast (level vs reference): estimate, standard error, Wald ``z``, its
normal p-value and confidence interval (as statsmodels reports them), and the same
statistic read as ``t`` with the model's denominator degrees of freedom (``p_t``).

Omnibus test of the label
-------------------------
Wald ``chi2 = b' V^-1 b`` over the ``k - 1`` label coefficients ``b`` with covariance
``V``, referred to chi-square with ``k - 1`` degrees of freedom (``p_chi2``); and the
equivalent ``F = chi2 / (k - 1)`` referred to ``F(k - 1, ddf)`` (``p_F``).

The denominator degrees of freedom follow the *between-within* rule:

* when the label varies within groups (the usual case: several labels measured in each
  patient), ``ddf = N - rank([X Z])``, the residual degrees of freedom of the model with
  the groups as fixed effects, i.e. ``N - n_groups - (k - 1)`` in a full design;
* when the label is constant within every group (a purely between-group factor),
  ``ddf = n_groups - k``.

Why: for the balanced design with one measurement per patient and label, this ``ddf``
equals ``(n_groups - 1)(k - 1)``, and with REML the Wald ``F`` equals the classical
repeated-measures ANOVA F, so the F-test is exact there (and the two approaches agree).
It needs no iterative approximation (Satterthwaite, Kenward-Roger are not in
statsmodels) and is never more liberal than treating the Wald chi-square as exact.

Warnings raised by the fit (convergence failures, a group variance on the boundary of
the parameter space, singular covariance) are captured and returned in
``MixedModelResult.warnings`` rather than printed; ``converged`` reports the optimiser's
own flag.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLM

from nehmap.stats.tidy import level_order, numeric_values, select_columns

__all__ = ["MixedModelResult", "mixed_model"]


@dataclass(frozen=True, eq=False)
class MixedModelResult:
    """Outcome of :func:`mixed_model`.

    Attributes
    ----------
    value, label, group : str
        The columns used.
    reference : object
        The reference level of ``label``.
    levels : tuple
        All levels, reference first.
    contrasts : pandas.DataFrame
        One row per non-reference level: ``level, reference, estimate, se, z, p,
        ci_low, ci_high, df, p_t, n_level, n_reference, mean_level, mean_reference``.
    wald_chi2, df_num, p_chi2 : float
        Omnibus Wald test of the label.
    F, df_den, p_F : float
        ``F = wald_chi2 / df_num`` and its p-value on ``(df_num, df_den)`` degrees of
        freedom (between-within rule, see the module documentation).
    ddf_method : str
        ``"within"`` or ``"between"``: which branch of the rule applied.
    n_obs, n_groups : int
        Observations and groups in the fit.
    group_var : float
        Variance of the random intercept.
    residual_var : float
        Residual variance.
    icc : float
        ``group_var / (group_var + residual_var)``.
    reml : bool
        Whether the fit used REML.
    converged : bool
        The optimiser's convergence flag.
    warnings : tuple of str
        Warnings raised during the fit(s), as ``"Category: message"``.
    llf : float
        Log-likelihood (restricted when ``reml``).
    lrt_chi2, p_lrt : float
        Likelihood-ratio test of the label from maximum-likelihood fits, when requested
        (``lrt=True``); NaN otherwise.
    alpha : float
        1 minus the confidence level of the intervals.
    fit : object
        The statsmodels results object, for further use.
    """

    value: str
    label: str
    group: str
    reference: Any
    levels: tuple[Any, ...]
    contrasts: pd.DataFrame = field(repr=False)
    wald_chi2: float
    df_num: int
    p_chi2: float
    F: float
    df_den: float
    p_F: float
    ddf_method: str
    n_obs: int
    n_groups: int
    group_var: float
    residual_var: float
    icc: float
    reml: bool
    converged: bool
    warnings: tuple[str, ...]
    llf: float
    lrt_chi2: float
    p_lrt: float
    alpha: float
    fit: Any = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Model-level fields (the omnibus test) as a dictionary."""
        return {
            "value": self.value,
            "label": self.label,
            "group": self.group,
            "reference": self.reference,
            "n_levels": len(self.levels),
            "wald_chi2": self.wald_chi2,
            "df_num": self.df_num,
            "p_chi2": self.p_chi2,
            "F": self.F,
            "df_den": self.df_den,
            "p_F": self.p_F,
            "ddf_method": self.ddf_method,
            "n_obs": self.n_obs,
            "n_groups": self.n_groups,
            "group_var": self.group_var,
            "residual_var": self.residual_var,
            "icc": self.icc,
            "reml": self.reml,
            "converged": self.converged,
            "n_warnings": len(self.warnings),
            "warnings": "; ".join(self.warnings),
            "llf": self.llf,
            "lrt_chi2": self.lrt_chi2,
            "p_lrt": self.p_lrt,
        }

    def to_frame(self) -> pd.DataFrame:
        """The contrast rows, each with the model-level omnibus columns appended."""
        model = {
            k: v
            for k, v in self.to_dict().items()
            if k not in ("reference", "value", "label", "group")
        }
        return self.contrasts.assign(value=self.value, label=self.label, group=self.group, **model)


def _fit(
    y: np.ndarray,
    X: pd.DataFrame,
    groups: np.ndarray,
    reml: bool,
    fit_kwargs: Mapping[str, Any],
    log: list[str],
    tag: str = "",
) -> Any:
    """Fit MixedLM with every warning captured into ``log``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = MixedLM(y, X, groups=groups).fit(reml=reml, **dict(fit_kwargs))
    for w in caught:
        msg = f"{tag}{w.category.__name__}: {w.message}"
        if msg not in log:
            log.append(msg)
    return res


def mixed_model(
    table: pd.DataFrame,
    value: str,
    label: str,
    group: str,
    reference: Any = None,
    *,
    reml: bool = True,
    alpha: float = 0.05,
    lrt: bool = False,
    nan_policy: Literal["raise", "omit"] = "raise",
    fit_kwargs: Mapping[str, Any] | None = None,
) -> MixedModelResult:
    """Fit ``value ~ C(label) + (1 | group)`` and test the label.

    Parameters
    ----------
    table, value : pandas.DataFrame, str
        Tidy table (one row per measurement) and its column of the response.
    label : str
        Column of the fixed factor (e.g. tumour label: 2 = ED, 3 = NEH).
    group : str
        Column of the grouping factor of the random intercept (e.g. patient).
    reference : object, optional
        Reference level of ``label``; default the first level (categorical order, or
        sorted).
    reml : bool, default True
        REML fit; ``False`` for maximum likelihood.
    alpha : float, default 0.05
        Confidence intervals at level ``1 - alpha``.
    lrt : bool, default False
        Also run a likelihood-ratio test of the label (two maximum-likelihood fits,
        with and without the label).
    nan_policy : {"raise", "omit"}, default "raise"
        What to do with rows with missing values.
    fit_kwargs : mapping, optional
        Passed to :meth:`MixedLM.fit` (e.g. ``{"method": ["lbfgs"]}``).

    Returns
    -------
    MixedModelResult

    Examples
    --------
    NEH (3) against edema (2), one row per patient and label::

        res = mixed_model(table, "rcbv", "label", "patient", reference=2)
        res.contrasts  # estimate, se, z, p, CI of NEH - ED
        res.F, res.p_F
    """
    fit_kwargs = {} if fit_kwargs is None else fit_kwargs
    df = select_columns(table, [value, label, group], nan_policy)
    y = numeric_values(df, value).to_numpy()
    levels = level_order(df[label])
    if len(levels) < 2:
        raise ValueError(f"{label!r} needs at least two levels, found {levels}")
    if reference is None:
        reference = levels[0]
    elif reference not in levels:
        raise ValueError(f"reference {reference!r} is not a level of {label!r}: {levels}")
    levels = [reference] + [lvl for lvl in levels if lvl != reference]
    others = levels[1:]
    k = len(levels)

    lab = df[label].to_numpy()
    names = [f"{label}[T.{lvl}]" for lvl in others]
    D = np.column_stack([(lab == lvl).astype(float) for lvl in others])
    X = pd.DataFrame(np.column_stack([np.ones(y.size), D]), columns=["Intercept", *names])
    codes, uniques = pd.factorize(df[group], sort=True)
    n_groups = len(uniques)
    if n_groups < 2:
        raise ValueError(f"{group!r} needs at least two groups, found {n_groups}")
    n_obs = int(y.size)

    log: list[str] = []
    res = _fit(y, X, codes, reml, fit_kwargs, log)

    fe = np.asarray(res.fe_params, dtype=float)
    cov = np.asarray(res.cov_params(), dtype=float)[: fe.size, : fe.size]
    se = np.sqrt(np.diag(cov))

    # Denominator degrees of freedom, between-within rule.
    group_sizes = np.bincount(codes)
    group_means = np.stack([np.bincount(codes, weights=col) for col in D.T], axis=1)
    D_within = D - (group_means / group_sizes[:, None])[codes]
    rank_within = int(np.linalg.matrix_rank(D_within)) if D_within.size else 0
    if rank_within > 0:
        ddf = float(n_obs - n_groups - rank_within)
        ddf_method = "within"
    else:
        ddf = float(n_groups - k)
        ddf_method = "between"
    if ddf < 1:
        log.append(f"nehmap: no residual degrees of freedom for the F-test (ddf = {ddf:g})")
        ddf = float("nan")

    z_crit = stats.norm.ppf(1 - alpha / 2)
    rows = []
    for j, lvl in enumerate(others, start=1):
        est, s = fe[j], se[j]
        z = est / s if s > 0 else float("nan")
        rows.append(
            {
                "level": lvl,
                "reference": reference,
                "estimate": float(est),
                "se": float(s),
                "z": float(z),
                "p": float(2 * stats.norm.sf(abs(z))),
                "ci_low": float(est - z_crit * s),
                "ci_high": float(est + z_crit * s),
                "df": ddf,
                "p_t": float(2 * stats.t.sf(abs(z), ddf)) if np.isfinite(ddf) else float("nan"),
                "n_level": int(np.sum(lab == lvl)),
                "n_reference": int(np.sum(lab == reference)),
                "mean_level": float(y[lab == lvl].mean()),
                "mean_reference": float(y[lab == reference].mean()),
            }
        )
    contrasts = pd.DataFrame(rows)

    b = fe[1:]
    V = cov[1:, 1:]
    df_num = k - 1
    try:
        if not np.all(np.isfinite(V)):
            raise np.linalg.LinAlgError("non-finite covariance")
        wald = float(b @ np.linalg.solve(V, b))
    except np.linalg.LinAlgError as exc:
        log.append(f"nehmap: Wald test not available ({exc})")
        wald = float("nan")
    p_chi2 = float(stats.chi2.sf(wald, df_num))
    F = wald / df_num
    p_F = float(stats.f.sf(F, df_num, ddf)) if np.isfinite(ddf) else float("nan")

    lrt_chi2 = p_lrt = float("nan")
    if lrt:
        full = res if not reml else _fit(y, X, codes, False, fit_kwargs, log, "LRT full: ")
        reduced = _fit(y, X[["Intercept"]], codes, False, fit_kwargs, log, "LRT reduced: ")
        lrt_chi2 = float(max(2.0 * (full.llf - reduced.llf), 0.0))
        p_lrt = float(stats.chi2.sf(lrt_chi2, df_num))

    group_var = float(np.asarray(res.cov_re)[0, 0])
    residual_var = float(res.scale)
    total = group_var + residual_var
    return MixedModelResult(
        value=value,
        label=label,
        group=group,
        reference=reference,
        levels=tuple(levels),
        contrasts=contrasts,
        wald_chi2=wald,
        df_num=df_num,
        p_chi2=p_chi2,
        F=float(F),
        df_den=ddf,
        p_F=p_F,
        ddf_method=ddf_method,
        n_obs=n_obs,
        n_groups=n_groups,
        group_var=group_var,
        residual_var=residual_var,
        icc=group_var / total if total > 0 else float("nan"),
        reml=bool(reml),
        converged=bool(res.converged),
        warnings=tuple(log),
        llf=float(res.llf),
        lrt_chi2=lrt_chi2,
        p_lrt=p_lrt,
        alpha=float(alpha),
        fit=res,
    )
