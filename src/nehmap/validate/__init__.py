"""Clinical validation of NEH maps: intensities, perfusion (H1, H2) and recurrence (H3).

The modules by question:

- ED versus NEH intensities (the paper's Tables 3 and 4): :mod:`~nehmap.validate.intensity`.
- H1, rCBV per compartment: :mod:`~nehmap.validate.rcbv`; H2, rCBV in peri-enhancing
  rims: :mod:`~nehmap.validate.rims`; both measure only the voxels
  :mod:`~nehmap.validate.perfusion` keeps, run over a cohort in
  :mod:`~nehmap.validate.perfusion_cohort` and are tested in
  :mod:`~nehmap.validate.perfusion_tests`.
- H3, the pre-operative NEH against the recurrence: :mod:`~nehmap.validate.recurrence`
  (the cohort run) around ``recurrence_cohort`` (pairing the scans), ``recurrence_pair``
  (one patient), ``recurrence_masks``, ``recurrence_metrics``, :mod:`~nehmap.validate.chance`
  (the chance models), ``recurrence_tests`` and ``recurrence_outputs``.
- Registration of the two scans (ANTsPy): :mod:`~nehmap.validate.registration` with
  ``registration_schedule`` (presets), ``registration_quality`` (masks, checks),
  ``registration_ants``, ``registration_transform`` and ``registration_warp``.
- Which cases take part, and why the others are out: :mod:`~nehmap.validate.cohort`.
"""
