"""The RECIST 1.1 entry form's fields and their conversion to an assessment.

The form has `TARGET_ROWS` rows, one per possible target lesion (RECIST 1.1 allows
at most five). `assessment_from_form` checks what the browser sent and names the
first invalid field in the form's own words, before `core.recist` parses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core import recist

TARGET_ROWS = 5
NODE = "node"
TOO_SMALL = "too_small"
NOT_EVALUATED = "not_evaluated"
FLAG_OPTIONS = [
    {"label": "Lymph node (short axis)", "value": NODE},
    {"label": "Too small to measure (5 mm)", "value": TOO_SMALL},
    {"label": "Not evaluated", "value": NOT_EVALUATED},
]
NON_TARGET_OPTIONS = [
    {"label": "No non-target lesions", "value": "absent"},
    {"label": "CR (all disappeared, nodes normal)", "value": recist.CR},
    {"label": "Non-CR/non-PD", "value": recist.NON_CR_NON_PD},
    {"label": "Unequivocal progression (PD)", "value": recist.PD},
    {"label": "Not evaluated (NE)", "value": recist.NE},
]
NEW_LESION_OPTIONS = [
    {"label": "No new lesions", "value": "no"},
    {"label": "Unequivocal new lesion", "value": "yes"},
    {"label": "Equivocal new lesion", "value": "equivocal"},
]


def field_id(row: int, name: str) -> str:
    """Return the component id of a target row's `site`, `mm` or `flags` field."""
    return f"reads-target-{row}-{name}"


# (component id, property) of every form field, in the order of `form_values`.
FORM_FIELDS = [
    (field_id(row, name), "value")
    for row in range(1, TARGET_ROWS + 1)
    for name in ("site", "mm", "flags")
] + [("reads-non-target", "value"), ("reads-new-lesions", "value")]


class FormError(ValueError):
    """A form field is missing or invalid; the message names the field."""


@dataclass(frozen=True)
class TargetRow:
    """One target lesion row of the form, as the browser sent it."""

    site: str | None
    diameter_mm: Any
    flags: Sequence[str]


def _parse_row(number: int, row: TargetRow) -> dict[str, Any] | None:
    """Return the lesion of a filled-in row, or None for an empty row."""
    site = (row.site or "").strip()
    flags = set(row.flags or ())
    has_value = row.diameter_mm not in (None, "")
    if not site and not has_value and not flags:
        return None
    field = f"Target lesion {number}"
    if not site:
        raise FormError(f"{field} site is missing; name the organ or lesion location")
    if TOO_SMALL in flags and NOT_EVALUATED in flags:
        raise FormError(f"{field}: choose either too small or not evaluated, not both")
    diameter: float | None = None
    if has_value:
        try:
            diameter = float(row.diameter_mm)
        except (TypeError, ValueError):
            raise FormError(
                f"{field} diameter (mm) is {row.diameter_mm!r}, not a number"
            ) from None
        if not math.isfinite(diameter) or diameter < 0:
            raise FormError(
                f"{field} diameter (mm) is {row.diameter_mm}; enter 0 or more"
            )
        if flags & {TOO_SMALL, NOT_EVALUATED}:
            raise FormError(
                f"{field} has a diameter and is marked too small or not evaluated; "
                "clear one of them"
            )
    elif not flags & {TOO_SMALL, NOT_EVALUATED}:
        raise FormError(
            f"{field} diameter (mm) is missing; enter it, or mark the lesion too "
            "small to measure or not evaluated"
        )
    return {
        "site": site,
        "diameter_mm": diameter,
        "is_node": NODE in flags,
        "too_small": TOO_SMALL in flags,
    }


def assessment_from_form(
    rows: Sequence[TargetRow], non_target: str | None, new_lesions: str | None
) -> dict[str, Any]:
    """Return the assessment input for `reads.save_assessment`, or raise FormError."""
    targets = []
    for number, row in enumerate(rows, start=1):
        lesion = _parse_row(number, row)
        if lesion is not None:
            targets.append(lesion)
    if not non_target:
        raise FormError("Non-target lesions is missing; choose a status")
    if not new_lesions:
        raise FormError("New lesions is missing; choose a status")
    return {"targets": targets, "non_target": non_target, "new_lesions": new_lesions}


def form_values(assessment: dict[str, Any] | None) -> list[Any]:
    """Return the form's field values for a saved assessment, row by row.

    The order is site, diameter, flags for each target row, then the non-target
    and new lesion statuses.
    """
    assessment = assessment or {}
    lesions = list(assessment.get("targets") or [])
    values: list[Any] = []
    for index in range(TARGET_ROWS):
        lesion = lesions[index] if index < len(lesions) else {}
        flags = []
        if lesion.get("is_node"):
            flags.append(NODE)
        if lesion.get("too_small"):
            flags.append(TOO_SMALL)
        elif lesion and lesion.get("diameter_mm") is None:
            flags.append(NOT_EVALUATED)
        values += [lesion.get("site"), lesion.get("diameter_mm"), flags]
    values.append(assessment.get("non_target", "absent"))
    values.append(assessment.get("new_lesions", "no"))
    return values


def baseline_values(history: dict[str, Any]) -> list[Any]:
    """Return the form's field values with the baseline lesion sites filled in.

    Diameters stay empty because the reader measures them at this timepoint. When
    the baseline had non-target lesions, their status stays empty too, so the
    reader has to assess it instead of inheriting "absent".
    """
    values = form_values(None)
    for index, lesion in enumerate(history["baseline_targets"][:TARGET_ROWS]):
        values[3 * index] = lesion["site"]
        values[3 * index + 2] = [NODE] if lesion.get("is_node") else []
    if history.get("baseline_non_target", "absent") != "absent":
        values[-2] = None
    return values
