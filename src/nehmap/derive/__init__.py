"""Deriving training data: NEH pseudo-ground truth and the two-level consensus set.

- :mod:`nehmap.derive.rule`: the paper's pseudo-ground-truth rule on arrays
  (:func:`derive_neh`). NEH = the reference's BraTS 2017-2020 label 1 (NCR/NET, outside
  the enhancing tumour) that a second, BraTS 2021-style segmentation does not call
  necrosis, cleaned by a morphological opening (ball of ``opening_mm`` mm) and a
  minimum component volume (mm^3).
- :mod:`nehmap.derive.second` finds each case's second segmentation;
  :mod:`nehmap.derive.neh` runs the rule over a collection (:func:`derive_dataset`,
  ``nehmap derive-neh``).
- :mod:`nehmap.derive.consensus`: the nnU-Net dataset of two-level consensus maps
  (0 background, 1 low-, 2 high-probability NEH) for training ``unetrpp-consensus``
  (``nehmap consensus-dataset``).
"""

from nehmap.derive.consensus import (
    CONSENSUS_LABELS,
    CONSENSUS_SCHEME,
    ConsensusReport,
    consensus_dataset,
    consensus_levels,
)
from nehmap.derive.neh import (
    DEFAULT_MIN_VOLUME_MM3,
    DEFAULT_OPENING_MM,
    DeriveReport,
    NehStats,
    SecondSegmentations,
    ball,
    choose_rule,
    derive_dataset,
    derive_neh,
    remove_small_components,
    volume_table,
)

__all__ = [
    "CONSENSUS_LABELS",
    "CONSENSUS_SCHEME",
    "DEFAULT_MIN_VOLUME_MM3",
    "DEFAULT_OPENING_MM",
    "ConsensusReport",
    "DeriveReport",
    "NehStats",
    "SecondSegmentations",
    "choose_rule",
    "ball",
    "consensus_dataset",
    "consensus_levels",
    "derive_dataset",
    "derive_neh",
    "remove_small_components",
    "volume_table",
]
