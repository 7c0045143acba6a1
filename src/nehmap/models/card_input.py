"""Does an input fit a model? The check behind :meth:`nehmap.models.card.ModelCard.check_input`.

:func:`check_input` refuses unknown, missing, extra or duplicated modalities and a channel
order other than the card's (:class:`ModelInputError`), and reports without failing
whether the input's voxel spacing (mm) differs from the training spacing
(:class:`InputCheck`); resampling is the inference code's job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nehmap.errors import NehmapInputError

if TYPE_CHECKING:
    from nehmap.models.card import ModelCard

__all__ = ["InputCheck", "ModelInputError", "check_input"]


class ModelInputError(NehmapInputError):
    """An input does not match what a model's card says it needs."""


@dataclass(frozen=True)
class InputCheck:
    """Outcome of :meth:`ModelCard.check_input`.

    Attributes
    ----------
    modalities : tuple of str
        Canonical modality names in the channel order the model needs.
    spacing_mm : tuple of float or None
        The input's voxel spacing (mm per array axis), if given.
    model_spacing_mm : tuple of float
        The spacing the model was trained at.
    needs_resampling : bool
        True when ``spacing_mm`` differs from ``model_spacing_mm`` by more than the
        tolerance; the caller resamples to the model's spacing before inference.
    """

    modalities: tuple[str, ...]
    spacing_mm: tuple[float, float, float] | None
    model_spacing_mm: tuple[float, float, float]
    needs_resampling: bool


def check_input(
    card: ModelCard,
    modalities: Sequence[str],
    spacing: Sequence[float] | None = None,
    tolerance_mm: float = 1e-3,
) -> InputCheck:
    """Check that an input fits the model: modalities and their channel order.

    Called as ``card.check_input(modalities, ...)``
    (:meth:`nehmap.models.card.ModelCard.check_input`) or ``check_input(card, modalities, ...)``.

    Parameters
    ----------
    card : ModelCard
        The model's card (its modalities in channel order and its training spacing).
    modalities : sequence of str
        The input's channels in order; aliases (``t1ce``, ``T1GD``, ``t2f``...) are
        accepted.
    spacing : sequence of 3 floats, optional
        The input's voxel spacing (mm per array axis).
    tolerance_mm : float
        Spacing differences up to this are not worth resampling.

    Returns
    -------
    InputCheck
        With ``needs_resampling`` set when the spacing differs from the card's.

    Raises
    ------
    ModelInputError
        Naming unknown, missing, extra or duplicated modalities, a channel order
        that differs from the card's, or an invalid spacing.
    """
    from nehmap.io.modalities import normalise_modality  # lazy: nehmap.io is heavy

    who = f"model {card.name or card.architecture}"
    need = list(card.modalities)
    unknown = [m for m in modalities if normalise_modality(m) is None]
    if unknown:
        raise ModelInputError(
            None, f"{who}: unknown modality name(s) {unknown}.", f"The model needs {need}."
        )
    given = [str(normalise_modality(m)) for m in modalities]
    dupes = sorted({g for g in given if given.count(g) > 1})
    if dupes:
        raise ModelInputError(None, f"{who}: modality given more than once: {dupes}.")
    missing = [m for m in need if m not in given]
    extra = [g for g in given if g not in need]
    if missing or extra:
        wrong = "; ".join(
            f"{what}: {names}"
            for what, names in (("missing", missing), ("not used", extra))
            if names
        )
        raise ModelInputError(
            None,
            f"{who} takes exactly {need} as input channels; {wrong} (given {given}).",
            "Provide every modality the model was trained on, and no other.",
        )
    if given != need:
        raise ModelInputError(
            None,
            f"{who}: channel order {given} differs from the model's {need}.",
            "Stack the channels in the model's order.",
        )
    x, y, z = card.spacing_mm
    model_spacing = (float(x), float(y), float(z))
    if spacing is None:
        return InputCheck(tuple(need), None, model_spacing, False)
    values = [float(s) for s in spacing]
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ModelInputError(
            None, f"{who}: spacing must be 3 positive numbers (mm), got {list(spacing)}."
        )
    differs = any(abs(a - b) > tolerance_mm for a, b in zip(values, model_spacing, strict=True))
    return InputCheck(tuple(need), (values[0], values[1], values[2]), model_spacing, differs)
