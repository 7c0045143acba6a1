"""Deriving training data: NEH pseudo-ground truth and the two-level consensus set.

- :mod:`nehmap.derive.neh`: the paper's pseudo-ground-truth step. NEH = the
  non-enhancing core of a second segmentation (e.g. a BraTS 2021-trained model) inside
  the edema of the reference segmentation (BraTS 2018), cleaned by a morphological
  opening (ball of ``opening_mm`` mm) and a minimum component volume (mm^3).
  :func:`derive_neh` works on arrays; :func:`derive_dataset` on collections
  (``nehmap derive-neh``).
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
    "ball",
    "consensus_dataset",
    "consensus_levels",
    "derive_dataset",
    "derive_neh",
    "remove_small_components",
    "volume_table",
]
