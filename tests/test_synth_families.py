"""Tumour families of nehmap synth: each family's defining property, mixed, bad input."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from nehmap.commands.options import EXIT_NOTHING_STARTED
from nehmap.commands.synth import add_arguments, run
from nehmap.labels import ED, ET, NC, NEH
from nehmap.synth import generate_case, write_cohort
from nehmap.synth.anatomy import load_anatomy
from nehmap.synth.families import CHOICES, FAMILY_NAMES, check_family, choose_family

SPACING = 2.0
SEEDS = (1, 2)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def _core(labels: np.ndarray) -> np.ndarray:
    """Necrosis and enhancing tumour: the bulk of an enhancing tumour."""
    return (labels == NC) | (labels == ET)


def _sphericity(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """pi^(1/3) (6 V)^(2/3) / A, the surface A counted as exposed voxel faces (mm^2)."""
    volume = mask.sum() * np.prod(spacing)
    area = 0.0
    for axis in range(3):
        padded = np.pad(mask, [(1, 1) if a == axis else (0, 0) for a in range(3)])
        faces = np.abs(np.diff(padded.astype(np.int8), axis=axis)).sum()
        area += faces * np.prod([spacing[a] for a in range(3) if a != axis])
    return float(np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area)


@pytest.fixture(scope="module")
def cases():
    return {
        family: [generate_case(seed, SPACING, family=family) for seed in SEEDS]
        for family in FAMILY_NAMES
    }


def test_default_is_the_ellipsoidal_family(cases):
    default = generate_case(SEEDS[0], SPACING)
    same = cases["ellipsoidal"][0]
    assert np.array_equal(default.labels, same.labels)
    assert np.array_equal(default.images["t1c"], same.images["t1c"])
    assert default.params["family"] == "ellipsoidal"


def test_every_family_is_recorded_and_differs(cases):
    for family, drawn in cases.items():
        for case in drawn:
            assert case.params["family"] == family
            assert case.params["geometry"]["family"] == family
    base = cases["ellipsoidal"][0].labels
    for family in FAMILY_NAMES[1:]:
        assert not np.array_equal(cases[family][0].labels, base), family


def test_irregular_is_less_spherical(cases):
    def mean_sphericity(family: str) -> float:
        return np.mean([_sphericity(_core(c.labels), c.spacing) for c in cases[family]])

    # measured: ellipsoidal about 0.62, irregular 0.33-0.40
    assert mean_sphericity("irregular") < 0.8 * mean_sphericity("ellipsoidal")


def test_multifocal_has_separate_foci(cases):
    for case in cases["multifocal"]:
        geometry = case.params["geometry"]
        assert 2 <= geometry["n_foci"] <= 4
        foci = len(geometry["foci_centres_mm"])
        _, components = ndi.label(_core(case.labels))
        assert 2 <= components <= 4 and foci >= 2


def test_small_stays_under_10_ml(cases):
    extra = [generate_case(seed, SPACING, family="small") for seed in (3, 4)]
    for case in [*cases["small"], *extra]:
        volume_ml = (case.labels > 0).sum() * np.prod(case.spacing) / 1000.0
        assert 0.5 < volume_ml < 10.0
        assert sum(case.facts["volume_mm3"].values()) / 1000.0 == pytest.approx(volume_ml)


def test_cortical_and_periventricular_locations(cases):
    anatomy = load_anatomy(SPACING)
    for case in cases["cortical"]:
        core = _core(case.labels)
        # the core reaches the outer 4 mm of the brain
        assert anatomy.depth[core].min() <= 4.0
    for case in cases["periventricular"]:
        core = _core(case.labels)
        assert anatomy.ventricle_distance[core].min() <= 4.0
        assert not (core & anatomy.ventricles).any()


def test_thin_or_absent_neh():
    thick, thin, absent = [], [], 0
    for seed in (1, 2, 3, 4):
        plain = generate_case(seed, SPACING)
        case = generate_case(seed, SPACING, family="thin-neh")
        geometry = case.params["geometry"]
        assert 0.5 <= geometry["neh_thickness_mean_mm"] <= 2.0
        if geometry["neh_absent"]:
            absent += 1
            assert not (case.labels == NEH).any()
            continue
        thick.append((plain.labels == NEH).sum())
        thin.append((case.labels == NEH).sum())
    assert absent >= 1 and thin
    assert np.mean(thin) < 0.5 * np.mean(thick)


def test_necrosis_dominated_and_non_enhancing(cases):
    for case in cases["necrotic"]:
        volume = case.facts["volume_mm3"]
        assert volume["NC"] > volume["ET"] + volume["NEH"]
    for case in cases["non-enhancing"]:
        assert not (case.labels == ET).any()
        assert (case.labels == NEH).sum() > 1000
        assert (case.labels == ED).any()


def test_mass_effect_scales_with_size(cases):
    for family in FAMILY_NAMES[1:]:
        for case in cases[family]:
            geometry = case.params["geometry"]
            radius = case.facts["bulk_equivalent_radius_mm"]
            scale = np.clip(radius / 20.0, 0.15, 1.0)
            assert geometry["mass_effect"] == pytest.approx(
                geometry["mass_effect_drawn"] * scale, rel=0.02
            )
    for case in cases["small"]:
        assert case.params["geometry"]["mass_effect"] <= 0.5 * 8.0 / 20.0


def test_mixed_draws_a_family_and_reproduces_it():
    seen = set()
    for seed in range(5):
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])
        expected = choose_family("mixed", rng)
        case = generate_case(seed, SPACING, family="mixed")
        assert case.params["family"] == expected
        assert case.params["family_requested"] == "mixed"
        seen.add(expected)
        if seed == 0:
            direct = generate_case(seed, SPACING, family=expected)
            assert np.array_equal(direct.labels, case.labels)
    assert len(seen) >= 3


def test_mixed_cannot_use_small_on_a_coarse_grid():
    with pytest.raises(ValueError, match="'small' \\(drawn by mixed\\).*at most 2 mm"):
        generate_case(0, 4.0, family="mixed")


def test_bad_family_names_and_limits():
    with pytest.raises(ValueError) as info:
        check_family("blobby", (1.0, 1.0, 1.0))
    for name in CHOICES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="'small' needs voxels of at most 2 mm.*3 mm"):
        check_family("small", (1.0, 1.0, 3.0))
    with pytest.raises(ValueError, match="'small' keeps the whole tumour under 10 ml"):
        check_family("small", (1.0, 1.0, 1.0), {"tumour_radius_mm": (5.0, 12.0)})
    assert check_family("small", (2.0, 2.0, 2.0), {"tumour_radius_mm": 5.0}) == ("small",)


def test_cohort_records_the_family(tmp_path):
    result = write_cohort(tmp_path / "c", 3, 5, spacing=SPACING, family="mixed", progress=False)
    cohort = json.loads((result.truth / "cohort.json").read_text())
    table = pd.read_csv(result.truth / "truth.csv")
    assert cohort["family"] == "mixed"
    families = [case["family"] for case in cohort["cases"]]
    assert families == table["family"].tolist()
    for seed, family in zip(table["seed"], families, strict=True):
        assert generate_case(int(seed), SPACING, family="mixed").params["family"] == family


def test_command_family_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parse([str(tmp_path / "x"), "--family", "blobby"])
    err = capsys.readouterr().err
    assert "blobby" in err and "non-enhancing" in err and "mixed" in err
    args = _parse([str(tmp_path / "y"), "--family", "small", "--spacing", "4", "--quiet"])
    assert run(args) == EXIT_NOTHING_STARTED
    err = capsys.readouterr().err
    assert "'small'" in err and "at most 2 mm" in err
    args = _parse(
        [str(tmp_path / "z"), "--family", "necrotic", "--n", "1", "--spacing", "4", "--quiet"]
    )
    assert run(args) == 0
    table = pd.read_csv(tmp_path / "z_truth" / "truth.csv")
    assert table["family"].tolist() == ["necrotic"]
