"""Label conventions of nehmap and converters to and from the public collections.

nehmap's own convention (used everywhere inside the package)::

    0  background
    1  NC   necrosis
    2  ED   edema (peritumoral T2/FLAIR signal that is not tumour core)
    3  NEH  non-enhancing hypercellular tumour
    4  ET   enhancing tumour

Regions (the BraTS-style evaluation regions, extended with NEH)::

    ET = {4}      TC = {1, 3, 4}      WT = {1, 2, 3, 4}

Other schemes are converted at the edges (reading and writing), by name:

============  ===========================================  ==============================
scheme        native labels                                into nehmap
============  ===========================================  ==============================
nehmap        0 bg, 1 NC, 2 ED, 3 NEH, 4 ET                identity
brats2018     1 NCR/NET, 2 ED, 4 ET (BraTS 2017-2020)      1->1, 2->2, 4->4
brats2021     1 NCR, 2 ED (incl. NET), 4 ET (BraTS 2021)   1->1, 2->2, 4->4
brats         1, 2, 4 of a BraTS release not known         1->1, 2->2, 4->4
brats2023     1 NETC, 2 SNFH, 3 ET (+4 resection cavity)   1->1, 2->2, 3->4, 4->0 (lossy)
upenn         1 NC, 2 ED, 4 ET (UPenn-GBM segm files)      1->1, 2->2, 4->4
rhuh          1 NC, 2 peritumoral signal, 3 ET (or 4 ET)   1->1, 2->2, 3->4, 4->4
nnunet-brats  1 ED, 2 NC, 3 ET (nnU-Net's BraTS datasets)  1->2, 2->1, 3->4
============  ===========================================  ==============================

The BraTS releases share file format and label values but not their meaning. Until
2020 label 1 is "necrotic and non-enhancing tumour core" (NCR/NET); from BraTS 2021 on
it is necrosis (NCR) alone, and the non-enhancing tumour belongs to label 2
("peritumoral edematous/invaded tissue"). Read into nehmap, both give label 1 as NC:
nothing in a BraTS file separates NEH from necrosis (``brats2018``) or from edema
(``brats2021``) -- that is exactly what ``nehmap derive-neh`` exploits. The collection
readers tell the release from the case IDs (``Brats18_``, ``BraTS19_``, ``BraTS20_``:
``brats2018``; ``BraTS2021_``: ``brats2021``); other IDs get ``brats`` (release not
known), which converts like the others but is refused where the meaning matters.

Going back from nehmap to a scheme without an NEH label, NEH joins the label that holds
non-enhancing tumour in that scheme: the core label 1 (NCR/NET, non-enhancing core) in
``brats2018``, ``brats``, ``brats2023``, ``upenn``, ``rhuh`` and ``nnunet-brats``, so
the TC and WT regions are preserved exactly; the edema label 2 in ``brats2021``, as
BraTS 2021 annotates it (its TC excludes the non-enhancing tumour). That direction is therefore lossy for
the NC/NEH distinction; native -> nehmap -> native is exact for every scheme except the
BraTS 2024 resection cavity (4 in ``brats2023``), which has no nehmap label and becomes
background (documented, with a warning when present).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

BACKGROUND = 0
NC = 1
ED = 2
NEH = 3
ET = 4

LABEL_NAMES: Mapping[int, str] = MappingProxyType(
    {BACKGROUND: "background", NC: "NC", ED: "ED", NEH: "NEH", ET: "ET"}
)
"""Short names of nehmap's labels, by value."""

LABEL_DESCRIPTIONS: Mapping[int, str] = MappingProxyType(
    {
        BACKGROUND: "background",
        NC: "necrosis",
        ED: "edema",
        NEH: "non-enhancing hypercellular tumour",
        ET: "enhancing tumour",
    }
)

TUMOUR_LABELS: tuple[int, ...] = (NC, ED, NEH, ET)

REGIONS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"ET": (ET,), "TC": (NC, NEH, ET), "WT": (NC, ED, NEH, ET)}
)
"""Evaluation regions as tuples of nehmap labels."""

LABEL_COLOURS: Mapping[int, tuple[int, int, int]] = MappingProxyType(
    {
        NC: (220, 40, 40),  # red, as the paper's Figure 1
        ED: (40, 180, 60),  # green
        NEH: (40, 90, 230),  # blue
        ET: (240, 210, 40),  # yellow
    }
)
"""Display colours (RGB 0-255) for the labels, matching the paper's Figure 1."""


@dataclass(frozen=True)
class LabelScheme:
    """A labelling convention and its mapping into nehmap's labels.

    Attributes
    ----------
    name : str
        Identifier used on the command line and in manifests.
    description : str
        Human-readable description.
    to_nehmap : Mapping[int, int]
        Native value -> nehmap value, for every value the scheme allows
        (0 included).
    from_nehmap : Mapping[int, int]
        nehmap value -> native value, for every nehmap label.
    lossy_values : frozenset[int]
        Native values that have no nehmap equivalent and are dropped
        (mapped to background) with a warning.
    """

    name: str
    description: str
    to_nehmap: Mapping[int, int]
    from_nehmap: Mapping[int, int]
    lossy_values: frozenset[int] = field(default_factory=frozenset)

    @property
    def allowed_values(self) -> tuple[int, ...]:
        """Native label values this scheme accepts, sorted."""
        return tuple(sorted(self.to_nehmap))

    def lookup_to_nehmap(self) -> np.ndarray:
        """Lookup table (uint8) indexed by native value, giving the nehmap value."""
        table = np.zeros(max(self.to_nehmap) + 1, dtype=np.uint8)
        for native, ours in self.to_nehmap.items():
            table[native] = ours
        return table

    def lookup_from_nehmap(self) -> np.ndarray:
        """Lookup table (uint8) indexed by nehmap value, giving the native value."""
        table = np.zeros(max(LABEL_NAMES) + 1, dtype=np.uint8)
        for ours, native in self.from_nehmap.items():
            table[ours] = native
        return table


def _scheme(
    name: str,
    description: str,
    to_nehmap: dict[int, int],
    from_nehmap: dict[int, int],
    lossy: Iterable[int] = (),
) -> LabelScheme:
    return LabelScheme(
        name=name,
        description=description,
        to_nehmap=MappingProxyType(dict(to_nehmap)),
        from_nehmap=MappingProxyType(dict(from_nehmap)),
        lossy_values=frozenset(lossy),
    )


_BRATS_VALUES = {0: 0, 1: NC, 2: ED, 4: ET}
"""Native -> nehmap values of the BraTS 2017-2021 and UPenn-GBM label maps (1, 2, 4)."""
_NEH_AS_CORE = {0: 0, NC: 1, ED: 2, NEH: 1, ET: 4}
"""nehmap -> native values where NEH is written into the non-enhancing core (1)."""

SCHEMES: Mapping[str, LabelScheme] = MappingProxyType(
    {
        s.name: s
        for s in (
            _scheme(
                "nehmap",
                "nehmap: 1 necrosis, 2 edema, 3 NEH, 4 enhancing tumour",
                {0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
                {0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
            ),
            _scheme(
                "brats2018",
                "BraTS 2017-2020: 1 necrotic and non-enhancing tumour core (NCR/NET), "
                "2 edema, 4 enhancing tumour",
                _BRATS_VALUES,
                _NEH_AS_CORE,
            ),
            _scheme(
                "brats2021",
                "BraTS 2021: 1 necrosis (NCR), 2 edematous and invaded tissue (non-enhancing "
                "tumour included), 4 enhancing tumour",
                _BRATS_VALUES,
                {0: 0, NC: 1, ED: 2, NEH: 2, ET: 4},
            ),
            _scheme(
                "brats",
                "BraTS 2017-2021, release not known: 1 NCR/NET (until 2020) or NCR (2021), "
                "2 edema, 4 enhancing tumour",
                _BRATS_VALUES,
                _NEH_AS_CORE,
            ),
            _scheme(
                "brats2023",
                "BraTS 2023+ GLI: 1 non-enhancing core, 2 surrounding FLAIR signal, "
                "3 enhancing tumour (2024: 4 resection cavity)",
                {0: 0, 1: NC, 2: ED, 3: ET, 4: BACKGROUND},
                {0: 0, NC: 1, ED: 2, NEH: 1, ET: 3},
                lossy=(4,),
            ),
            _scheme(
                "upenn",
                "UPenn-GBM segmentations: 1 necrosis, 2 edema, 4 enhancing tumour",
                _BRATS_VALUES,
                _NEH_AS_CORE,
            ),
            _scheme(
                "rhuh",
                "RHUH-GBM segmentations: 1 necrosis, 2 peritumoral T2/FLAIR signal, "
                "3 enhancing tumour (some copies write 4 for enhancing)",
                {0: 0, 1: NC, 2: ED, 3: ET, 4: ET},
                {0: 0, NC: 1, ED: 2, NEH: 1, ET: 3},
            ),
            _scheme(
                "nnunet-brats",
                "nnU-Net v2 BraTS conversion: 1 edema, 2 non-enhancing/necrotic core, "
                "3 enhancing tumour",
                {0: 0, 1: ED, 2: NC, 3: ET},
                {0: 0, ED: 1, NC: 2, NEH: 2, ET: 3},
            ),
        )
    }
)
"""All label schemes nehmap knows, by name."""

SCHEME_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "brats2017": "brats2018",
        "brats2019": "brats2018",
        "brats2020": "brats2018",
        "brats2024": "brats2023",
        "brats-gli": "brats2023",
        "upenn-gbm": "upenn",
        "rhuh-gbm": "rhuh",
        "nnunet": "nnunet-brats",
    }
)


def scheme_name(scheme: str | LabelScheme) -> str:
    """The name of a label scheme given by name or as a :class:`LabelScheme`."""
    return scheme.name if isinstance(scheme, LabelScheme) else str(scheme)


def get_scheme(scheme: str | LabelScheme) -> LabelScheme:
    """Return the :class:`LabelScheme` called ``scheme`` (aliases accepted).

    Raises
    ------
    ValueError
        When the name is unknown; the message lists the known names.
    """
    if isinstance(scheme, LabelScheme):
        return scheme
    key = scheme.strip().lower()
    key = SCHEME_ALIASES.get(key, key)
    try:
        return SCHEMES[key]
    except KeyError:
        known = ", ".join(sorted(set(SCHEMES) | set(SCHEME_ALIASES)))
        raise ValueError(f"Unknown label scheme {scheme!r}. Use one of: {known}.") from None


def unexpected_values(labels: np.ndarray, scheme: str | LabelScheme) -> list[float]:
    """Values present in ``labels`` that ``scheme`` does not define (sorted)."""
    s = get_scheme(scheme)
    allowed = set(s.allowed_values)
    return [v.item() for v in np.unique(labels) if v.item() not in allowed]


def check_label_map(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """``labels`` as an array, after checking that it holds only nehmap labels (0-4).

    Integer arrays, and float arrays whose values are whole numbers, are accepted; the
    dtype is kept. ``name`` is the argument's name in the messages.

    Raises
    ------
    ValueError
        For another dtype, non-integer values, or values that are not nehmap
        labels; the message lists the labels and says how to convert a dataset's.
    """
    arr = np.asarray(labels)
    legend = ", ".join(f"{k} {v}" for k, v in LABEL_NAMES.items())
    if arr.dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must be an integer nehmap label map ({legend}), got dtype {arr.dtype}."
        )
    if arr.size == 0:
        return arr
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        odd = arr[arr != np.round(arr)]
        raise ValueError(
            f"{name} holds non-integer values {np.unique(odd)[:8].tolist()}, which are not "
            f"nehmap labels ({legend}); pass the label map itself, not probabilities."
        )
    if arr.min() < min(LABEL_NAMES) or arr.max() > max(LABEL_NAMES):
        bad = [v.item() for v in np.unique(arr) if v.item() not in LABEL_NAMES][:8]
        raise ValueError(
            f"{name} holds values {bad} that are not nehmap labels ({legend}). Convert the "
            "dataset's labels first, e.g. `nehmap.labels.to_nehmap(labels, 'brats2021')`."
        )
    return arr


def _check_values(labels: np.ndarray, scheme: LabelScheme, what: str) -> None:
    bad = unexpected_values(labels, scheme)
    if bad:
        raise ValueError(
            f"{what} contains values {bad} that the '{scheme.name}' label scheme does not "
            f"define (allowed: {list(scheme.allowed_values)}). Check that the right label "
            "scheme was declared for this file."
        )


def to_nehmap(labels: np.ndarray, scheme: str | LabelScheme) -> np.ndarray:
    """Convert a label map from ``scheme`` into nehmap's labels.

    Parameters
    ----------
    labels : np.ndarray
        Integer (or integral float) label array of any shape.
    scheme : str | LabelScheme
        The native scheme's name or object.

    Returns
    -------
    np.ndarray
        uint8 array of the same shape with nehmap labels 0-4.

    Raises
    ------
    ValueError
        If ``labels`` holds values the scheme does not define.
    """
    s = get_scheme(scheme)
    arr = np.asarray(labels)
    _check_values(arr, s, "Label map")
    lost = [v for v in s.lossy_values if np.any(arr == v)]
    if lost:
        warnings.warn(
            f"Label values {lost} of the '{s.name}' scheme have no nehmap equivalent "
            "(e.g. the BraTS 2024 resection cavity) and were set to background.",
            stacklevel=2,
        )
    return s.lookup_to_nehmap()[arr.astype(np.intp, copy=False)]


def from_nehmap(labels: np.ndarray, scheme: str | LabelScheme) -> np.ndarray:
    """Convert a nehmap label map into ``scheme``'s labels (uint8).

    When the scheme has no NEH label, NEH goes to the label that holds non-enhancing
    tumour in that scheme (see the module): the core label in most schemes, so ET, TC
    and WT are preserved; edema in ``brats2021``, as BraTS 2021 annotates it.
    """
    s = get_scheme(scheme)
    arr = np.asarray(labels)
    _check_values(arr, SCHEMES["nehmap"], "nehmap label map")
    return s.lookup_from_nehmap()[arr.astype(np.intp, copy=False)]


def convert(labels: np.ndarray, source: str | LabelScheme, target: str | LabelScheme) -> np.ndarray:
    """Convert a label map from one scheme to another through nehmap's labels."""
    return from_nehmap(to_nehmap(labels, source), target)


def region_mask(labels: np.ndarray, region: str | int) -> np.ndarray:
    """Boolean mask of a region (``"ET"``, ``"TC"``, ``"WT"``) or of one nehmap label.

    Parameters
    ----------
    labels : np.ndarray
        nehmap label map.
    region : str | int
        A region name, a label name (``"NEH"``) or a label value.
    """
    if isinstance(region, str):
        key = region.upper()
        if key in REGIONS:
            return np.isin(labels, REGIONS[key])
        names = {v.upper(): k for k, v in LABEL_NAMES.items()}
        if key in names:
            return labels == names[key]
        raise ValueError(
            f"Unknown region {region!r}: use ET, TC, WT or a label name "
            f"({', '.join(LABEL_NAMES.values())})."
        )
    return labels == int(region)


_BRATS_RELEASE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"^brats17_", "brats2018"),
    (r"^brats18_", "brats2018"),
    (r"^brats19_", "brats2018"),
    (r"^brats20_", "brats2018"),
    (r"^brats2021_", "brats2021"),
    (r"^brats21_", "brats2021"),
)


def brats_scheme_for_id(case_id: str) -> str:
    """Label scheme of a BraTS 2017-2021 case, told from its ID.

    ``Brats17_``/``Brats18_``/``BraTS19_``/``BraTS20_`` IDs give ``brats2018`` (label 1
    is NCR/NET), ``BraTS2021_``/``BraTS21_`` give ``brats2021`` (label 1 is NCR); any
    other ID gives ``brats`` (release not known).

    >>> brats_scheme_for_id("Brats18_TCIA01_190_1"), brats_scheme_for_id("BraTS2021_00000")
    ('brats2018', 'brats2021')
    """
    import re

    for pattern, scheme in _BRATS_RELEASE_PATTERNS:
        if re.match(pattern, case_id, re.IGNORECASE):
            return scheme
    return "brats"
