"""Statistics of nehmap: permutation tests, spatial chance models, mixed models, ANOVA.

=============================  ============================================================
function                       use
=============================  ============================================================
:func:`sign_flip_test`         mean of per-case metrics against a null baseline (exact
                               for n <= 40, Monte Carlo otherwise)
:func:`sign_flip_table`        the same for every metric of a tidy table
:func:`spatial_null`           a mask metric against random rigid placements in the brain
:func:`random_placement`       one draw of that spatial chance model
:func:`mixed_model`            ``value ~ C(label) + (1 | group)``, contrasts and omnibus
:func:`oneway_anova`           one-way ANOVA (Fisher or Welch)
:func:`repeated_measures_anova`  within-subject ANOVA with Greenhouse-Geisser correction
:func:`pairwise_tests`         post-hoc tests with multiplicity correction
:func:`holm`                   Holm step-down adjustment of a family of p-values
:func:`ordered_test`           one-sided tests of an expected ordering, e.g. ET > NEH > ED
=============================  ============================================================
"""

from nehmap.stats.anova import (
    OneWayAnovaResult,
    RepeatedMeasuresAnovaResult,
    greenhouse_geisser_epsilon,
    oneway_anova,
    repeated_measures_anova,
)
from nehmap.stats.mixed import MixedModelResult, mixed_model
from nehmap.stats.multiple import holm
from nehmap.stats.ordered import OrderedTestResult, ordered_test
from nehmap.stats.pairwise import pairwise_tests
from nehmap.stats.permutation import SignFlipResult, sign_flip_table, sign_flip_test
from nehmap.stats.spatial_null import SpatialNullResult, random_placement, spatial_null

__all__ = [
    "MixedModelResult",
    "OneWayAnovaResult",
    "OrderedTestResult",
    "RepeatedMeasuresAnovaResult",
    "SignFlipResult",
    "SpatialNullResult",
    "greenhouse_geisser_epsilon",
    "holm",
    "mixed_model",
    "oneway_anova",
    "ordered_test",
    "pairwise_tests",
    "random_placement",
    "repeated_measures_anova",
    "sign_flip_table",
    "sign_flip_test",
    "spatial_null",
]
