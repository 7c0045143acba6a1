"""Evaluating predicted label maps against reference ones, case by case and over a cohort.

:func:`evaluate_collections` pairs the label maps of two folders by case id, scores every
pair with :func:`nehmap.metrics.evaluate_labels` (Dice, Jaccard, HD95 and surface Dice of
the regions ET, TC, WT and the labels NC, ED, NEH) and summarises the cohort. Either side
can be anything :func:`nehmap.io.segmentations.find_label_maps` reads: a ``nehmap segment``
output folder (one model chosen, ``fused`` for the fused NEH mask), a collection in a
public layout (BraTS, UPenn-GBM, RHUH-GBM, nnU-Net, manifest) in its own label scheme, or
a plain folder of ``<case>.nii.gz`` label maps. Two models of one ``nehmap segment``
output folder are compared by giving the folder twice with two model names.

Per case:

1. both label maps are read into nehmap's labels in canonical RAS+ orientation;
2. they must lie on the same grid: identical shape and volume corners at most
   :data:`GRID_TOLERANCE_MM` (0.001 mm) apart; nothing is resampled;
3. distances are computed with the reference's voxel spacing (mm, per array axis).

A map that only holds NEH (the fused mask ``fused``: 0/1, or a two-level map such as
``levels`` or a consensus-family model's map: 0 background, 1 low, 2 high probability) is
scored on the NEH region only, its NEH being the mask (value 1) or the high-probability
level (value 2).

A problem with one case (unreadable file, unknown label values, different grids) makes
that case fail with a message naming the files; the other cases go on. Cases present on
one side only are listed in :attr:`EvaluationResult.missing`.

Summary statistics are over the cases with a defined value (an HD95 is undefined, NaN,
when a region is empty in exactly one map and no ``empty_penalty`` is given): mean,
sample standard deviation (``ddof=1``), median and the number of values ``n``.

Modules: :mod:`~nehmap.evaluate.pair` (one case), :mod:`~nehmap.evaluate.cohort` (two
folders, case by case) and :mod:`~nehmap.evaluate.summary` (cohort summaries and the
paper-style tables); everything is importable from :mod:`nehmap.evaluate`.
:mod:`~nehmap.evaluate.perfect_model` scores a perfect model through the pipeline (the
Dice that resampling to the networks' spacing and the fusion's smoothing cost).
"""

from nehmap.evaluate.cohort import (
    CASE_COLUMNS,
    FAILURE_COLUMNS,
    MISSING_COLUMNS,
    EvaluationResult,
    evaluate_collections,
)
from nehmap.evaluate.pair import GRID_TOLERANCE_MM, evaluate_pair
from nehmap.evaluate.perfect_model import (
    PERFECT_MODEL_REGIONS,
    perfect_model_dice,
    perfect_probabilities,
)
from nehmap.evaluate.summary import (
    NEH_COLUMNS,
    PAPER_METRICS,
    REGION_COLUMNS,
    SUMMARY_COLUMNS,
    format_cell,
    paper_table,
    summarise,
)

__all__ = [
    "CASE_COLUMNS",
    "FAILURE_COLUMNS",
    "GRID_TOLERANCE_MM",
    "MISSING_COLUMNS",
    "NEH_COLUMNS",
    "PAPER_METRICS",
    "REGION_COLUMNS",
    "PERFECT_MODEL_REGIONS",
    "SUMMARY_COLUMNS",
    "EvaluationResult",
    "evaluate_collections",
    "evaluate_pair",
    "format_cell",
    "paper_table",
    "perfect_model_dice",
    "perfect_probabilities",
    "summarise",
]
