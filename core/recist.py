"""RECIST 1.1 timepoint response, computed from a reader's lesion measurements.

Source: Eisenhauer EA et al., New response evaluation criteria in solid tumours:
revised RECIST guideline (version 1.1), Eur J Cancer 2009;45:228-247. Its Table 1
gives the overall response for subjects with target disease, and Table 2 the overall
response for subjects with non-target disease only.

Every function here is pure: callers fetch the baseline and earlier sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CR, PR, SD, PD, NE = "CR", "PR", "SD", "PD", "NE"
# Table 2 names this response "non-CR/non-PD"; RECIST 1.1 advises against calling it SD.
NON_CR_NON_PD = "non-CR/non-PD"

NON_TARGET_STATUSES = (CR, NON_CR_NON_PD, PD, NE, "absent")
NEW_LESION_STATUSES = ("no", "yes", "equivocal")

# On study, a lymph node with a short axis under 10 mm counts as normal.
NODE_NORMAL_BELOW_MM = 10.0
# RECIST 1.1 records a lesion judged present but too small to measure as 5 mm.
TOO_SMALL_DEFAULT_MM = 5.0
PR_DECREASE = 0.30
PD_INCREASE = 0.20
PD_ABSOLUTE_MM = 5.0


class AssessmentError(ValueError):
    """A RECIST 1.1 assessment is incomplete or contains an invalid value."""


@dataclass(frozen=True)
class TargetLesion:
    """One target lesion: longest diameter, or short axis for a lymph node, in mm.

    `diameter_mm` is None when the lesion was not evaluated at this timepoint, and
    `too_small` marks a lesion present but too small to measure (counted as 5 mm).
    """

    site: str
    diameter_mm: float | None
    is_node: bool = False
    too_small: bool = False

    def measured_mm(self) -> float | None:
        if self.too_small:
            return TOO_SMALL_DEFAULT_MM
        return self.diameter_mm


@dataclass(frozen=True)
class Assessment:
    """A reader's inputs at one timepoint."""

    targets: tuple[TargetLesion, ...]
    non_target: str
    new_lesions: str


def parse_assessment(data: Mapping[str, Any]) -> Assessment:
    """Build an Assessment from form or JSON input, naming the first invalid field."""
    raw_targets = data.get("targets") or []
    if not isinstance(raw_targets, list):
        raise AssessmentError("targets must be a list of lesions")
    if len(raw_targets) > 5:
        raise AssessmentError(
            f"targets has {len(raw_targets)} lesions; RECIST 1.1 allows at most 5"
        )
    targets = tuple(_parse_target(i, item) for i, item in enumerate(raw_targets))
    non_target = data.get("non_target", "absent")
    if non_target not in NON_TARGET_STATUSES:
        raise AssessmentError(
            f"non_target is {non_target!r}; expected one of {NON_TARGET_STATUSES}"
        )
    new_lesions = data.get("new_lesions", "no")
    if new_lesions not in NEW_LESION_STATUSES:
        raise AssessmentError(
            f"new_lesions is {new_lesions!r}; expected one of {NEW_LESION_STATUSES}"
        )
    if not targets and non_target == "absent":
        raise AssessmentError("assessment has neither target nor non-target lesions")
    return Assessment(targets, non_target, new_lesions)


def _parse_target(index: int, item: Any) -> TargetLesion:
    if not isinstance(item, Mapping):
        raise AssessmentError(f"targets[{index}] must be a mapping")
    site = str(item.get("site") or "").strip()
    if not site:
        raise AssessmentError(f"targets[{index}].site is missing")
    diameter = item.get("diameter_mm")
    if diameter is not None:
        try:
            diameter = float(diameter)
        except (TypeError, ValueError):
            raise AssessmentError(
                f"targets[{index}].diameter_mm is {diameter!r}, not a number"
            ) from None
        if diameter < 0:
            raise AssessmentError(f"targets[{index}].diameter_mm is negative")
    return TargetLesion(
        site=site,
        diameter_mm=diameter,
        is_node=bool(item.get("is_node", False)),
        too_small=bool(item.get("too_small", False)),
    )


def assessment_to_dict(assessment: Assessment) -> dict[str, Any]:
    return {
        "targets": [
            {
                "site": t.site,
                "diameter_mm": t.diameter_mm,
                "is_node": t.is_node,
                "too_small": t.too_small,
            }
            for t in assessment.targets
        ],
        "non_target": assessment.non_target,
        "new_lesions": assessment.new_lesions,
    }


def sum_of_diameters(targets: Iterable[TargetLesion]) -> float | None:
    """Return the sum in mm, or None when any target lesion was not evaluated."""
    total = 0.0
    for lesion in targets:
        value = lesion.measured_mm()
        if value is None:
            return None
        total += value
    return total


def _partial_sum(targets: Iterable[TargetLesion]) -> float:
    return sum(value for t in targets if (value := t.measured_mm()) is not None)


def _is_progression(current: float, nadir: float) -> bool:
    """Return whether the sum rose >= 20% and >= 5 mm over the nadir."""
    increase = current - nadir
    return increase >= PD_ABSOLUTE_MM and current >= nadir * (1 + PD_INCREASE)


def _is_complete_response(targets: Sequence[TargetLesion]) -> bool:
    """Return whether every non-nodal lesion is gone and every node is under 10 mm."""
    for lesion in targets:
        value = lesion.measured_mm()
        if value is None:
            return False
        if lesion.is_node and value >= NODE_NORMAL_BELOW_MM:
            return False
        if not lesion.is_node and value > 0:
            return False
    return True


def target_response(
    targets: Sequence[TargetLesion], baseline_sum: float, nadir_sum: float
) -> str:
    """Return the RECIST 1.1 target lesion response.

    `nadir_sum` is the smallest sum on study, baseline included. Progression is
    checked first because a sum can be 30% below baseline and still 20% above nadir.
    When some lesions were not evaluated, the response is NE unless the evaluated
    ones alone already meet progression.
    """
    current = sum_of_diameters(targets)
    if current is None:
        return PD if _is_progression(_partial_sum(targets), nadir_sum) else NE
    if _is_progression(current, nadir_sum):
        return PD
    if _is_complete_response(targets):
        return CR
    if baseline_sum > 0 and current <= baseline_sum * (1 - PR_DECREASE):
        return PR
    return SD


def overall_with_targets(target: str, non_target: str, new_lesions: str) -> str:
    """Return the overall response from RECIST 1.1 Table 1 (target disease present).

    A subject without non-target lesions ("absent") is read as non-target CR. An
    equivocal new lesion does not make PD at this timepoint.
    """
    if new_lesions == "yes" or target == PD or non_target == PD:
        return PD
    if target == NE:
        return NE
    if target == CR:
        return CR if non_target in (CR, "absent") else PR
    if target == PR:
        return PR
    return SD


def overall_without_targets(non_target: str, new_lesions: str) -> str:
    """Return the overall response from RECIST 1.1 Table 2 (non-target disease only)."""
    if new_lesions == "yes" or non_target == PD:
        return PD
    if non_target == NE:
        return NE
    if non_target == CR:
        return CR
    return NON_CR_NON_PD


def timepoint_response(
    assessment: Assessment, earlier_sums: Sequence[float | None]
) -> str | None:
    """Return the timepoint response given the sums of earlier timepoints in order.

    `earlier_sums[0]` is the baseline sum. Returns None at baseline (no earlier
    sums), where RECIST 1.1 records measurements but no response.
    """
    if not earlier_sums:
        return None
    if not assessment.targets:
        return overall_without_targets(assessment.non_target, assessment.new_lesions)
    baseline = earlier_sums[0]
    if baseline is None:
        return NE
    nadir = min(value for value in earlier_sums if value is not None)
    target = target_response(assessment.targets, baseline, nadir)
    return overall_with_targets(target, assessment.non_target, assessment.new_lesions)
