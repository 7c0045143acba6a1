"""scripts/finalise_demo_weights.py rewrites models/README.md: its own sections stay."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "finalise_demo_weights.py"


def _script():
    spec = importlib.util.spec_from_file_location("finalise_demo_weights", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


README = """# Shipped demo weights

Held-out table (written by the script).

## What training on derive-neh labels costs

Hand-written text.

<!-- transfer -->
## Transfer: held-out tumour families and acquisition styles

old table
<!-- /transfer -->

<!-- transfer-baseline -->
## Transfer baseline

baseline table
<!-- /transfer-baseline -->

Reproduce: `make weights` (scripts/train-demo-weights.sh, about 3 h on 2 CPU cores).
For real use, train on BraTS-derived data with NEH labels on a GPU; see the README.

## What the networks are

- paunet is a reconstruction.
"""


def test_hand_written_sections_are_kept_and_generated_ones_are_not(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    script = _script()
    kept = "\n".join(script.kept_sections(tmp_path))
    assert "## What training on derive-neh labels costs\n\nHand-written text." in kept
    assert "## What the networks are\n\n- paunet is a reconstruction." in kept
    assert kept.index("derive-neh") < kept.index("What the networks are")
    for generated in (
        "Held-out table",
        "old table",
        "baseline table",
        "Reproduce:",
        "For real use",
    ):
        assert generated not in kept
    # the transfer blocks come back from transfer_section, the baseline kept as it was
    section = "\n".join(script.transfer_section(tmp_path, "new table"))
    assert "new table" in section and "baseline table" in section and "old table" not in section
    assert script.kept_sections(tmp_path / "nothing-here") == []


def test_transfer_tables_name_the_shipped_models() -> None:
    text = "| family | fused NEH | paunet-finetune-best ET | unetrpp-consensus-best NEH |"
    named = _script().shipped_names(text)
    assert named == "| family | fused NEH | paunet ET | unetrpp-consensus NEH |"


def test_stage_words_read_the_family_from_the_synthetic_cohort(tmp_path: Path) -> None:
    """A stage on a single-family cohort says so (from the cohort's own record); the
    mixed set and data that is not a synthetic cohort add nothing."""
    import json

    from nehmap.train import TrainConfig

    script = _script()
    for name, family in (("ell", "ellipsoidal"), ("mix", "mixed")):
        (tmp_path / f"{name}_truth").mkdir()
        (tmp_path / f"{name}_truth" / "cohort.json").write_text(json.dumps({"family": family}))

    def words(data: str) -> str:
        config = TrainConfig.from_dict(
            {"data": str(tmp_path / data), "out": "x", "model": "paunet"}
        )
        return script._data_words(config)

    assert words("ell").startswith(" on the ellipsoidal family only")
    assert words("mix") == "" and words("elsewhere") == ""


def test_heldout_comparison_pairs_installed_and_new_scores() -> None:
    import pandas as pd

    installed = pd.DataFrame(
        {"ET": [0.9, None], "NEH": [0.7, 0.6]}, index=pd.Index(["paunet", "fused"], name="model")
    )
    new = pd.DataFrame(
        {"ET": [0.8, None], "NEH": [0.75, 0.5]}, index=pd.Index(["paunet", "fused"], name="model")
    )
    rows = _script().compare_heldout(installed, new).set_index(["model", "region"])
    assert rows.loc[("paunet", "ET"), "change"] == pytest.approx(-0.1)
    assert rows.loc[("paunet", "NEH"), "change"] == pytest.approx(0.05)
    assert rows.loc[("fused", "NEH"), ["installed", "new"]].tolist() == [0.6, 0.5]
    assert ("fused", "ET") not in rows.index  # no region without a score


def test_new_weights_are_never_written_over_the_installed_ones(tmp_path: Path) -> None:
    installed = tmp_path / "models"
    installed.mkdir()
    (installed / "paunet.safetensors").write_bytes(b"installed")
    with pytest.raises(SystemExit, match="make install-weights"):
        _script().main(tmp_path / "work", installed, installed)
    assert (installed / "paunet.safetensors").read_bytes() == b"installed"
    assert sorted(p.name for p in installed.iterdir()) == ["paunet.safetensors"]
