"""The study configuration: one TOML or YAML file describes the whole study.

``nehmap study --init study.toml`` writes a commented template (:data:`TEMPLATE`).
Every section is optional except ``[study]`` and at least one cohort; unknown keys are
errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nehmap.errors import NehmapInputError

TEMPLATE = """\
# nehmap study configuration (TOML). Paths are relative to this file.
# Run with:  nehmap study study.toml

[study]
name = "NEH validation"
output = "study-output"          # all results, the report and the work folder go here
seed = 0

# Pre-operative cohort with perfusion (e.g. UPenn-GBM): model agreement (Tables 1-2),
# intensities (Tables 3-4), rCBV per compartment (H1: Figure 2, Table 5) and rims (H2).
[cohorts.perfusion]
path = "data/UPENN-GBM/NIfTI-files"
# layout = "upenn"               # detected when left out
# exclude = "overlap-with-training.txt"   # ids (file or comma list), e.g. BraTS 2018 overlap
# include = ""
# clinical = "UPENN-GBM_clinical_info_v2.1.csv"
# clinical_id = "ID"
# exclude_where = ["PsP_TP_score="]

# Longitudinal cohort (e.g. RHUH-GBM): pre-operative NEH against recurrence (H3).
[cohorts.recurrence]
path = "data/RHUH-GBM_nii_v1"
# exclude = "RHUH-0035"

[segment]
models = ["paunet", "unetrpp", "unetrpp-consensus"]   # shipped names or checkpoint paths
device = ""                      # "" = automatic (CUDA, MPS, CPU)
tta = false                      # test-time mirroring
sigma_mm = 1.5                   # fusion: Gaussian sigma (mm)
threshold = 0.5                  # fusion: NEH threshold
low = 0.2                        # fusion: lower bound of the low-probability level
fusion = "mean"                  # or "staple" (nehmap segment --fusion)

[agreement]                      # model agreement, as the paper's Tables 1 and 2
pred = "paunet"
ref = "unetrpp"
method = "voxels"                # or "surface_elements"
tolerance_mm = 2.0

[intensity]
normalise = "none"               # or "zscore"

[rcbv]
exclude_vessels = false          # H1 as the paper: all voxels; true leaves out large vessels
vessel_percentile = 99.0         # large vessels: above this brain rCBV percentile (H2 always)

[rims]
et_model = "paunet"
neh_model = "paunet"             # or "fused"
rims_mm = [2.0, 4.0, 6.0]

[recurrence]
preop_model = "paunet"           # or "fused": pNEH from the fused NEH mask (the consensus)
recurrence_model = "unetrpp"
preset = "quick"                 # ANTs registration: "quick", "full" or "affine"
threads = 2                      # ANTs threads; 1 = bit-identical reruns (docs/method.md)
null_n = 200                     # chance placements per case and chance model
chance = ["matched", "brain"]    # matched: primary test (distance-matched placements);
                                 # brain: as the paper; spin: rotation about the cavity
n_permutations = 10000

[execution]
workers = 1                      # local worker processes for per-case steps
scheduler = ""                   # a Dask scheduler address to run on a cluster instead
"""


def _check_keys(section: str, data: dict, allowed: set[str], path: Path | None) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise NehmapInputError(
            path,
            f"unknown key(s) {unknown} in [{section}].",
            f"Known keys: {', '.join(sorted(allowed))}. See nehmap study --init for a template.",
        )


@dataclass
class CohortConfig:
    """One cohort: a collection and its selection rules."""

    path: str
    layout: str | None = None
    include: str | None = None
    exclude: str | None = None
    clinical: str | None = None
    clinical_id: str = "ID"
    exclude_where: list[str] = field(default_factory=list)


@dataclass
class SegmentConfig:
    """The ``[segment]`` table: the networks and the fusion of their NEH maps.

    Attributes
    ----------
    models : list of str
        Shipped model names or checkpoint paths.
    device : str
        ``"cuda"``, ``"mps"``, ``"cpu"``, or ``""`` to choose automatically.
    tta : bool
        Test-time mirroring over the three axes.
    sigma_mm, threshold, low : float
        The fusion's Gaussian sigma (mm), NEH threshold and lower bound of the
        low-probability level (:func:`nehmap.fusion.fuse_neh`).
    fusion : str
        ``"mean"`` of the probabilities (the paper) or ``"staple"`` of the masks.
    """

    models: list[str] = field(default_factory=lambda: ["paunet", "unetrpp", "unetrpp-consensus"])
    device: str = ""
    tta: bool = False
    sigma_mm: float = 1.5
    threshold: float = 0.5
    low: float = 0.2
    fusion: str = "mean"


@dataclass
class AgreementConfig:
    """The ``[agreement]`` table: which two models Tables 1 and 2 compare, and how.

    Attributes
    ----------
    pred, ref : str
        The model scored and the model it is scored against.
    method : str
        Surface convention of HD95 and surface Dice: ``"voxels"`` (MONAI) or
        ``"surface_elements"`` (DeepMind's surface-distance).
    tolerance_mm : float
        Surface-Dice tolerance in mm.
    """

    pred: str = "paunet"
    ref: str = "unetrpp"
    method: str = "voxels"
    tolerance_mm: float = 2.0


@dataclass
class IntensityConfig:
    """The ``[intensity]`` table (Tables 3-4).

    Attributes
    ----------
    normalise : str
        ``"none"`` (the scans' own values, as the paper) or ``"zscore"`` (each modality
        z-scored inside the brain first).
    """

    normalise: str = "none"


@dataclass
class RcbvConfig:
    """The ``[rcbv]`` table: rCBV per compartment (H1).

    Attributes
    ----------
    exclude_vessels : bool
        Leave large vessels out of H1 too (the paper leaves them out of H2 only).
    vessel_percentile : float
        Large vessels are the voxels above this percentile of the brain's rCBV (H1 with
        ``exclude_vessels``, and always in H2).
    """

    exclude_vessels: bool = False
    vessel_percentile: float = 99.0


@dataclass
class RimsConfig:
    """The ``[rims]`` table: peri-enhancing rims against NEH (H2).

    Attributes
    ----------
    et_model, neh_model : str
        The model whose enhancing tumour the rims grow from, and the model whose NEH is
        compared with the rims (or ``"fused"``: the fused NEH mask).
    rims_mm : list of float
        Outer distances of the rims from the lesion core, in mm.
    """

    et_model: str = "paunet"
    neh_model: str = "paunet"
    rims_mm: list[float] = field(default_factory=lambda: [2.0, 4.0, 6.0])


@dataclass
class RecurrenceConfig:
    """The ``[recurrence]`` table: the pre-operative NEH against recurrence (H3).

    Attributes
    ----------
    preop_model : str
        The model whose NEH is the pNEH, or ``"fused"`` (the fused NEH mask).
    recurrence_model : str
        The model whose enhancing tumour at recurrence is the ETRL.
    preset : str
        ANTs registration preset: ``"quick"``, ``"full"`` or ``"affine"``.
    threads : int
        ANTs threads (1 gives bit-identical reruns).
    null_n : int
        Chance placements per case and chance model (the command's default is 500; the
        study runs many cases).
    n_permutations : int
        Random sign flips of the cohort tests when they are not exact.
    chance : list of str
        Chance models to run: ``"matched"`` (distance-matched placements, the primary
        test), ``"brain"`` (anywhere in the brain, as the paper), ``"spin"`` (rotations
        about the cavity).
    """

    preop_model: str = "paunet"
    recurrence_model: str = "unetrpp"
    preset: str = "quick"
    threads: int = 2
    null_n: int = 200
    n_permutations: int = 10_000
    chance: list[str] = field(default_factory=lambda: ["matched", "brain"])


@dataclass
class ExecutionConfig:
    """The ``[execution]`` table: where the per-case steps run.

    Attributes
    ----------
    workers : int
        Local worker processes.
    scheduler : str
        A Dask scheduler address (``tcp://host:8786``) to run on a cluster instead.
    """

    workers: int = 1
    scheduler: str = ""


_SECTIONS: dict[str, type] = {
    "segment": SegmentConfig,
    "agreement": AgreementConfig,
    "intensity": IntensityConfig,
    "rcbv": RcbvConfig,
    "rims": RimsConfig,
    "recurrence": RecurrenceConfig,
    "execution": ExecutionConfig,
}


@dataclass
class StudyConfig:
    """The whole study (see :data:`TEMPLATE`)."""

    name: str = "NEH validation"
    output: str = "study-output"
    seed: int = 0
    cohorts: dict[str, CohortConfig] = field(default_factory=dict)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    intensity: IntensityConfig = field(default_factory=IntensityConfig)
    rcbv: RcbvConfig = field(default_factory=RcbvConfig)
    rims: RimsConfig = field(default_factory=RimsConfig)
    recurrence: RecurrenceConfig = field(default_factory=RecurrenceConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    base_dir: Path = field(default=Path("."), repr=False)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], base_dir: Path = Path("."), path: Path | None = None
    ) -> StudyConfig:
        """Build from parsed TOML/YAML; relative paths resolve against ``base_dir``."""
        _check_keys("top level", data, {"study", "cohorts", *_SECTIONS}, path)
        study = dict(data.get("study", {}))
        _check_keys("study", study, {"name", "output", "seed"}, path)
        cohorts = {}
        for name, spec in (data.get("cohorts") or {}).items():
            if name not in ("perfusion", "recurrence"):
                raise NehmapInputError(
                    path,
                    f"unknown cohort [cohorts.{name}].",
                    "Use [cohorts.perfusion] and/or [cohorts.recurrence].",
                )
            _check_keys(f"cohorts.{name}", spec, {f.name for f in fields(CohortConfig)}, path)
            if "path" not in spec:
                raise NehmapInputError(
                    path,
                    f"[cohorts.{name}] has no path.",
                    "Give the collection folder or manifest.",
                )
            cohorts[name] = CohortConfig(**spec)
        if not cohorts:
            raise NehmapInputError(
                path, "defines no cohort.", "Add [cohorts.perfusion] and/or [cohorts.recurrence]."
            )
        sections = {}
        for key, kind in _SECTIONS.items():
            spec = data.get(key, {}) or {}
            _check_keys(key, spec, {f.name for f in fields(kind)}, path)
            sections[key] = kind(**spec)
        if sections["segment"].fusion not in ("mean", "staple"):
            raise NehmapInputError(
                path,
                f"[segment] fusion = {sections['segment'].fusion!r} is not a fusion.",
                'Use "mean" (the paper\'s consensus) or "staple".',
            )
        chance = sections["recurrence"].chance
        known = ("matched", "brain", "spin")
        if isinstance(chance, str) or not chance or any(m not in known for m in chance):
            raise NehmapInputError(
                path,
                f"[recurrence] chance = {chance!r} is not a list of chance models.",
                f'Use a list of {", ".join(known)}, e.g. chance = ["matched", "brain"].',
            )
        return cls(cohorts=cohorts, base_dir=base_dir, **study, **sections)

    @classmethod
    def from_file(cls, path: str | Path) -> StudyConfig:
        """Read a ``.toml``, ``.yaml`` or ``.yml`` study file."""
        p = Path(path)
        if not p.is_file():
            raise NehmapInputError(
                p, "does not exist.", "Create one with: nehmap study --init study.toml"
            )
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(p.read_text())
            elif p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(p.read_text()) or {}
            else:
                raise NehmapInputError(p, "is neither .toml nor .yaml.", "Rename it.")
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            if isinstance(exc, NehmapInputError):
                raise
            raise NehmapInputError(p, f"cannot be parsed ({exc}).", "Fix the syntax.") from exc
        return cls.from_dict(data, base_dir=p.resolve().parent, path=p)

    def resolve(self, value: str | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def output_dir(self) -> Path:
        """Folder of the study's outputs.

        ``output`` resolved against the study file's folder, or ``study-output`` in the
        working folder when the study file sets none.
        """
        return self.resolve(self.output) or Path("study-output")

    def to_dict(self) -> dict[str, Any]:
        """The study's settings as plain data (what the study file holds), without ``base_dir``."""
        data = asdict(self)
        data.pop("base_dir")
        return data

    def section_hash(self, *names: str) -> str:
        """A short hash of some sections, to know when cached results are stale.

        With the ``segment`` section it also covers the models' weights (the sha256 in
        each model card), so new weights under the same name are not mistaken for the
        ones that made the cached maps.
        """
        data = self.to_dict()
        chosen = {n: data[n] for n in names}
        if "segment" in names:
            chosen["model_weights"] = model_weights_fingerprint(self.segment.models)
        text = json.dumps(chosen, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_weights_fingerprint(models: list[str]) -> list[str]:
    """The weights' sha256 of each model (shipped name or checkpoint path), from its card;
    the name itself where the card cannot be read (loading reports that problem)."""
    from nehmap.errors import NehmapInputError
    from nehmap.models.checkpoint import read_card
    from nehmap.segmentation import resolve_checkpoint

    prints = []
    for model in models:
        try:
            prints.append(read_card(resolve_checkpoint(model)).weights_sha256 or model)
        except (NehmapInputError, OSError):
            prints.append(model)
    return prints
