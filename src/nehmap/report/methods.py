"""The report's methods text, generated from the study configuration.

Every parameter of the study file appears in the text with its value, so that the
report alone documents how its numbers were produced; the software versions close it.
The text returned here is HTML (all configuration values escaped).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pandas as pd

from nehmap._version import __version__
from nehmap.report.formatting import model_label
from nehmap.report.html import esc, html_table

if TYPE_CHECKING:
    from nehmap.study.config import StudyConfig

DISTRIBUTIONS: tuple[tuple[str, str], ...] = (
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("torch", "torch"),
    ("nibabel", "nibabel"),
    ("pandas", "pandas"),
    ("statsmodels", "statsmodels"),
    ("antspyx", "antspyx"),
    ("SimpleITK", "SimpleITK"),
    ("matplotlib", "matplotlib"),
)
"""(label, distribution name) of the libraries whose versions the report lists."""

SURFACE_METHODS = {
    "voxels": "boundary voxels (a mask minus its face-connected erosion, distances between "
    "voxel centres; the MONAI convention)",
    "surface_elements": "surface elements on voxel corners weighted by their area "
    "(the DeepMind surface-distance convention)",
}

PRESETS = {
    "quick": "nehmap's quick schedule: centre-of-mass start, affine stage (Mattes mutual "
    "information) then SyN, at shrink factors 4-2-1 with a few full-resolution iterations",
    "full": "ANTsPy's SyN with its default parameters (affine then SyN, Mattes mutual information)",
    "affine": "the affine stage only (12 parameters)",
}


def software_versions() -> dict[str, str]:
    """Versions of nehmap, Python and the libraries the results depend on.

    Read from the installed distributions' metadata (nothing heavy is imported);
    a library that is not installed is reported as such.
    """
    versions = {"nehmap": __version__, "python": platform.python_version()}
    for label, dist in DISTRIBUTIONS:
        try:
            versions[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[label] = "not installed"
    return versions


def _models(names: list[str]) -> str:
    return ", ".join(f"{esc(model_label(n))} (<code>{esc(n)}</code>)" for n in names)


def _mm(value: Any) -> str:
    return f"{esc(f'{float(value):g}')} mm"


def cohorts_text(config: StudyConfig) -> str:
    """The cohorts and their selection rules."""
    parts = []
    for name, cohort in config.cohorts.items():
        rules = [f"collection <code>{esc(cohort.path)}</code>"]
        rules.append(
            f"layout <code>{esc(cohort.layout)}</code>" if cohort.layout else "layout detected"
        )
        if cohort.include:
            rules.append(f"included ids <code>{esc(cohort.include)}</code>")
        if cohort.exclude:
            rules.append(f"excluded ids <code>{esc(cohort.exclude)}</code>")
        if cohort.clinical:
            rules.append(
                f"clinical table <code>{esc(cohort.clinical)}</code> "
                f"(id column <code>{esc(cohort.clinical_id)}</code>)"
            )
        if cohort.exclude_where:
            conditions = ", ".join(f"<code>{esc(c)}</code>" for c in cohort.exclude_where)
            rules.append(f"excluded where {conditions}")
        parts.append(f"{esc(name)}: {'; '.join(rules)}")
    return f"<b>Cohorts.</b> {'. '.join(parts)}." if parts else "<b>Cohorts.</b> none."


def segmentation_text(config: StudyConfig) -> str:
    """Segmentation and fusion."""
    s = config.segment
    device = f"device <code>{esc(s.device)}</code>" if s.device else "automatic device choice"
    tta = "with" if s.tta else "without"
    return (
        f"<b>Segmentation and fusion.</b> Every selected scan was segmented by "
        f"{len(s.models)} network(s): {_models(list(s.models))}, on {device}, {tta} "
        f"test-time mirroring. The networks' NEH probabilities were averaged voxel by voxel "
        f"and smoothed with a 3D Gaussian filter of σ = {_mm(s.sigma_mm)} (converted to voxels "
        f"per axis from the voxel spacing); NEH is the smoothed probability "
        f"p ≥ {esc(f'{s.threshold:g}')}. The two-level consensus map marks high-probability "
        f"NEH (p ≥ {esc(f'{s.threshold:g}')}) and low-probability NEH "
        f"({esc(f'{s.low:g}')} ≤ p &lt; {esc(f'{s.threshold:g}')})."
        f" {CHOICES_TEXT}"
    )


CHOICES_TEXT = (
    "Where the paper leaves room, nehmap chose as follows (docs/method.md gives the "
    "reasons). PAUNet is nehmap's reconstruction: the paper gives no layer sizes, and its "
    "high-resolution branch is a full-resolution residual path on the input joining the "
    "last decoder level. UNETR++ concatenates its attention heads cleanly (the reference "
    "code's token/channel permutation is available as <code>epa_layout=reference</code> "
    "for imported public checkpoints). The consensus network reads the four MRI sequences "
    "and outputs background, low and high NEH (the paper's n = 2 counts foreground "
    "labels). The low-probability threshold of the two-level map is nehmap's; the paper "
    "gives none. NEH training labels follow the paper's derivation (BraTS 2017-2020 NCR/NET "
    "that a BraTS 2021-style segmentation does not call necrosis, then a 1 mm opening and "
    "removal of components below 50 mm³, sizes the paper does not give)."
)


def agreement_text(config: StudyConfig) -> str:
    """Model agreement (Tables 1-2)."""
    a = config.agreement
    method = SURFACE_METHODS.get(a.method, f"the <code>{esc(a.method)}</code> convention")
    return (
        f"<b>Model agreement (Tables 1-2).</b> {esc(model_label(a.pred))} was compared with "
        f"{esc(model_label(a.ref))} case by case: Dice, Jaccard, the 95th-percentile "
        f"Hausdorff distance (HD95, the larger of the two directed 95th percentiles of the "
        f"surface distances, in mm) and the surface Dice at a tolerance of "
        f"{_mm(a.tolerance_mm)}, for the enhancing tumour (ET, label 4), tumour core (TC, "
        f"labels 1, 3, 4), whole tumour (WT, labels 1-4) and NEH (label 3). Surfaces were "
        f"taken as {method} (<code>method = {esc(a.method)}</code>). Values are mean ± sample "
        f"SD over cases; undefined values (e.g. HD95 when a region is empty in one map) "
        f"are left out."
    )


def intensity_text(config: StudyConfig) -> str:
    """ED versus NEH intensities (Tables 3-4)."""
    normalise = config.intensity.normalise
    scale = (
        "on the scans' own intensity scale"
        if normalise in ("none", "", None)
        else f"after <code>{esc(normalise)}</code> normalisation of each modality inside the brain"
    )
    return (
        f"<b>Intensities (Tables 3-4).</b> For each four-label model, the mean intensity of "
        f"each modality within edema (ED, label 2) and NEH (label 3) was measured per case, "
        f"{scale}. A linear mixed-effects model mean ~ label + (1 | case), ED as reference, "
        f"fitted by REML per model and modality, gives the NEH - ED effect with its Wald z "
        f"and the F test of the label."
    )


def rcbv_text(config: StudyConfig) -> str:
    """H1: rCBV per compartment (Figure 2, Table 5)."""
    percentile = esc(f"{config.rcbv.vessel_percentile:g}")
    if config.rcbv.exclude_vessels:
        vessels = (
            f"leaving out large vessels as the voxels above the {percentile}th percentile of "
            "the brain's rCBV (the paper does this in H2 only; the analysis with them kept is "
            "given as a sensitivity line)"
        )
    else:
        vessels = (
            "large vessels included, as in the paper, which leaves them out in H2 only (the "
            f"analysis without the voxels above the {percentile}th percentile of the brain's "
            "rCBV is given as a sensitivity line)"
        )
    return (
        f"<b>H1: rCBV per compartment (Figure 2, Table 5).</b> rCBV was measured in brain "
        f"voxels with perfusion signal (rCBV &gt; 0), {vessels}. The per-case mean rCBV of ET, NEH, ED and NC was compared across cases per "
        f"model by a repeated-measures ANOVA over ET, NEH and ED (Greenhouse-Geisser "
        f"corrected p also given), Holm-corrected paired t-tests, and one-sided paired "
        f"tests of the expected order ET &gt; NEH &gt; ED; NC is described but not tested. "
        f"For two-level consensus maps the low- and high-probability levels were compared "
        f"with a paired two-sided t-test."
    )


def rims_text(config: StudyConfig) -> str:
    """H2: peri-enhancing rims (Figure 3)."""
    r = config.rims
    rims = ", ".join(_mm(v) for v in r.rims_mm)
    neh = "the fused NEH mask" if r.neh_model == "fused" else esc(model_label(r.neh_model))
    return (
        f"<b>H2: peri-enhancing rims (Figure 3).</b> Rims of {rims} were grown outward from "
        f"the lesion core (the enhancing tumour of {esc(model_label(r.et_model))} with the "
        f"necrosis and holes it encloses) using Euclidean distances in mm. Necrosis, "
        f"enhancing tumour and vessels were left out of the rims and of NEH (taken from "
        f"{neh}). Each rim's per-case mean rCBV was compared with NEH by paired t-tests "
        f"(two-sided, and one-sided NEH &gt; rim; Holm-corrected), and all regions together "
        f"by a repeated-measures ANOVA."
    )


def recurrence_text(config: StudyConfig) -> str:
    """H3: pre-operative NEH versus recurrence (Tables 6-7, Figure 4)."""
    c = config.recurrence
    preset = PRESETS.get(c.preset, f"the <code>{esc(c.preset)}</code> preset")
    return (
        f"<b>H3: pre-operative NEH and recurrence (Tables 6-7, Figure 4).</b> Each "
        f"pre-operative scan was registered onto the recurrence scan of the same patient "
        f"with ANTs (<code>preset = {esc(c.preset)}</code>: {preset}; {esc(c.threads)} "
        f"thread(s)), and the pre-operative NEH (pNEH) of {_pneh_source(c)} and its tumour "
        f"core (ET + NC) were warped onto the recurrence grid with nearest-label "
        f"interpolation. Against the "
        f"enhancing tumour of the recurrence segmented by "
        f"{esc(model_label(c.recurrence_model))} (label 4), the spatial metrics "
        f"MeanEdgeDistance, FractionNearEdge, VolumeContainment and FractionInside were "
        f"computed. {_chance_text(c)} Across subjects, sign-flip permutation tests (all "
        f"sign patterns when the cohort is small enough to enumerate, otherwise "
        f"{esc(f'{c.n_permutations:,}')} random sign flips) compared the mean with its "
        f"chance baseline (1 for ratios, 0 for the raw distance, 0.5 for chance ranks, 0 for "
        f"differences from the matched controls), one- and two-sided; the four metrics' "
        f"p-values were Holm-adjusted per chance model and test; tests with fewer than 5 "
        f"usable subjects were not computed."
    )


def _pneh_source(c: Any) -> str:
    """Which map gave the pNEH (and the tumour core), for the methods text."""
    if c.preop_model == "fused":
        return (
            f"the fused NEH mask (<code>&lt;case&gt;_neh-mask</code>, the consensus; tumour "
            f"core from {esc(model_label(c.recurrence_model))})"
        )
    return esc(model_label(c.preop_model))


def _chance_text(c: Any) -> str:
    """The chance models of the run, the primary first."""
    models = list(getattr(c, "chance", ["brain"]))
    parts = []
    if "matched" in models:
        parts.append(
            f"The primary test's chance model placed the pNEH {esc(c.null_n)} times at other "
            f"positions of the same distances to the warped tumour core (rotations about the "
            f"core in its distance coordinates), in tissue that could hold NEH (brain without "
            f"the cavity, recurrence necrosis and T1-dark CSF); the primary test is each "
            f"subject's rank among these placements against 0.5, and the matched controls "
            f"(placements overlapping pNEH by at most 10 %) give the paired comparison."
        )
    if "brain" in models:
        parts.append(
            f"As the paper, the value expected by chance also came from {esc(c.null_n)} "
            f"random placements of the pNEH shape anywhere in the recurrence brain (random "
            f"rotation, centroid on a random brain voxel); the ratio is observed / expected."
        )
    if "spin" in models:
        parts.append("A third model rotated the pNEH about the cavity centre (spin).")
    return " ".join(parts)


def statistics_text(config: StudyConfig) -> str:
    """Reporting conventions."""
    return (
        f"<b>Reporting.</b> Tables give mean ± SD over cases. p-values below 0.0001 are "
        f"printed as &lt; 0.0001, others with 4 significant digits; interpretations call an "
        f"effect significant at p &lt; 0.05. Random draws used the study seed "
        f"{esc(config.seed)}; the same inputs, configuration and software give the same "
        f"results."
    )


def methods_html(config: StudyConfig) -> str:
    """All methods paragraphs, each led by its topic, as HTML."""
    parts = [
        cohorts_text(config),
        segmentation_text(config),
        agreement_text(config),
        intensity_text(config),
        rcbv_text(config),
        rims_text(config),
        recurrence_text(config),
        statistics_text(config),
    ]
    return "\n".join(f"<p>{p}</p>" for p in parts)


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows += _flatten(f"{prefix}.{key}" if prefix else str(key), item)
        return rows
    if isinstance(value, list | tuple):
        return [(prefix, ", ".join(str(v) for v in value) or "(empty)")]
    return [(prefix, "(empty)" if value in (None, "") else str(value))]


def config_frame(config: StudyConfig) -> pd.DataFrame:
    """Every configuration value as rows (``parameter`` in dotted form, ``value``)."""
    rows = _flatten("", config.to_dict())
    return pd.DataFrame(rows, columns=["parameter", "value"])


def config_html(config: StudyConfig) -> str:
    """The full configuration as a two-column table, so that no parameter goes unreported."""
    return html_table(
        config_frame(config),
        source="study.json",
        form="config",
        caption="All configuration values",
    )


def versions_html(versions: dict[str, str] | None = None) -> str:
    """The software versions as one sentence."""
    versions = versions or software_versions()
    items = ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items())
    return f"<p><b>Software.</b> {items}.</p>"
