"""Synthetic cohort on real anatomy: phantom cases with full ground truth.

Each case puts one glioblastoma-like tumour (necrosis, enhancing rim, a partial NEH
layer, edema) into the MNI152 brain on the BraTS grid, and synthesises T1, T1c, T2 and
FLAIR, optionally an rCBV map and a follow-up scan at recurrence with the known
transform between the time points.

Main entry points:

* :func:`generate_case` -> :class:`SyntheticCase` (in memory, deterministic by seed);
* :func:`write_cohort` -> a cohort in a public collection's layout plus its truth;
* :func:`load_anatomy` -> the MNI152 tissue maps on the BraTS grid at any spacing.
"""

from nehmap.synth.anatomy import Anatomy, brats_grid, load_anatomy
from nehmap.synth.case import SyntheticCase, generate_case
from nehmap.synth.cohort import CohortResult, case_seeds, truth_folder, write_cohort
from nehmap.synth.params import DEFAULT_PARAMS, MODALITIES
from nehmap.synth.recurrence import Recurrence

__all__ = [
    "DEFAULT_PARAMS",
    "MODALITIES",
    "Anatomy",
    "CohortResult",
    "Recurrence",
    "SyntheticCase",
    "brats_grid",
    "case_seeds",
    "generate_case",
    "load_anatomy",
    "truth_folder",
    "write_cohort",
]
