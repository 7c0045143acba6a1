"""An independent binary STAPLE (Warfield, Zou & Wells 2004), by plain EM in numpy.

Written from the paper, for the tests to check nehmap's STAPLE against: the true
segmentation T is unknown; rater j has sensitivity p_j = P(D_j = 1 | T = 1) and
specificity q_j = P(D_j = 0 | T = 0); the prior P(T = 1) = g is fixed to the mean
foreground fraction of the raters. EM alternates

    E: W_i = g a_i / (g a_i + (1 - g) b_i),
       a_i = prod_j p_j^D_ij (1 - p_j)^(1 - D_ij),  b_i = prod_j q_j^(1 - D_ij) (1 - q_j)^D_ij
    M: p_j = sum_i W_i D_ij / sum_i W_i,  q_j = sum_i (1 - W_i)(1 - D_ij) / sum_i (1 - W_i)

from p_j = q_j = 0.99999 until W stops changing.
"""

from __future__ import annotations

import numpy as np


def staple_em(masks, tol: float = 1e-12, max_iter: int = 10_000) -> np.ndarray:
    """Posterior P(T = 1) per voxel (float64, the masks' shape)."""
    d = np.stack([np.asarray(m, bool).ravel() for m in masks]).astype(np.float64)  # (R, V)
    g = d.mean()
    p = np.full(d.shape[0], 0.99999)
    q = np.full(d.shape[0], 0.99999)
    w = np.zeros(d.shape[1])
    for _ in range(max_iter):
        log_a = (d * np.log(p)[:, None] + (1 - d) * np.log1p(-p)[:, None]).sum(0)
        log_b = ((1 - d) * np.log(q)[:, None] + d * np.log1p(-q)[:, None]).sum(0)
        new = 1.0 / (1.0 + np.exp(np.log1p(-g) + log_b - np.log(g) - log_a))
        p = np.clip((new * d).sum(1) / new.sum(), 1e-12, 1 - 1e-12)
        q = np.clip(((1 - new) * (1 - d)).sum(1) / (1 - new).sum(), 1e-12, 1 - 1e-12)
        done = np.abs(new - w).max() < tol
        w = new
        if done:
            break
    return w.reshape(np.shape(masks[0]))
