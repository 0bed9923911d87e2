"""RECIST 1.1 response rules, row by row.

Source of every row: Eisenhauer EA et al., New response evaluation criteria in solid
tumours: revised RECIST guideline (version 1.1), Eur J Cancer 2009;45:228-247. The
target lesion rules are its CR, PR, PD and SD definitions with the nodal, 5 mm and
too-small-to-measure notes; the overall rows are its Table 1 (target disease) and
Table 2 (non-target disease only).
"""

from __future__ import annotations

import pytest

from core import recist
from core.recist import CR, NE, NON_CR_NON_PD, PD, PR, SD, TargetLesion

# Table 1: (target, non-target, new lesions) -> overall response.
TABLE_1 = [
    (CR, CR, "no", CR),
    (CR, NON_CR_NON_PD, "no", PR),
    (CR, NE, "no", PR),
    (PR, NON_CR_NON_PD, "no", PR),
    (PR, NE, "no", PR),
    (PR, CR, "no", PR),
    (SD, NON_CR_NON_PD, "no", SD),
    (SD, NE, "no", SD),
    (SD, CR, "no", SD),
    (NE, NON_CR_NON_PD, "no", NE),
    (NE, CR, "no", NE),
    (PD, CR, "no", PD),
    (PD, NON_CR_NON_PD, "yes", PD),
    (CR, PD, "no", PD),
    (SD, PD, "yes", PD),
    (CR, CR, "yes", PD),
    (PR, NON_CR_NON_PD, "yes", PD),
    (NE, NE, "yes", PD),
    # No non-target lesions at baseline: target CR alone is CR.
    (CR, "absent", "no", CR),
    # An equivocal new lesion is not PD until confirmed.
    (SD, NON_CR_NON_PD, "equivocal", SD),
]

# Table 2: (non-target, new lesions) -> overall response.
TABLE_2 = [
    (CR, "no", CR),
    (NON_CR_NON_PD, "no", NON_CR_NON_PD),
    (NE, "no", NE),
    (PD, "no", PD),
    (PD, "yes", PD),
    (CR, "yes", PD),
    (NON_CR_NON_PD, "yes", PD),
    (NE, "yes", PD),
]


@pytest.mark.parametrize(("target", "non_target", "new", "expected"), TABLE_1)
def test_table_1_row(target: str, non_target: str, new: str, expected: str) -> None:
    assert recist.overall_with_targets(target, non_target, new) == expected


@pytest.mark.parametrize(("non_target", "new", "expected"), TABLE_2)
def test_table_2_row(non_target: str, new: str, expected: str) -> None:
    assert recist.overall_without_targets(non_target, new) == expected


def lesion(
    mm: float | None, *, node: bool = False, small: bool = False
) -> TargetLesion:
    return TargetLesion("liver", mm, is_node=node, too_small=small)


# Target lesion rules: (current lesions, baseline sum, nadir sum) -> target response.
TARGET_RULES = [
    # CR: every non-nodal lesion gone.
    ([lesion(0), lesion(0)], 50.0, 50.0, CR),
    # CR: a node shrunk to 9 mm short axis is normal; the sum is 9, not 0.
    ([lesion(0), lesion(9, node=True)], 45.0, 45.0, CR),
    # Not CR: a node at exactly 10 mm is still pathological; 10 <= 70% of 45.
    ([lesion(0), lesion(10, node=True)], 45.0, 45.0, PR),
    # PR: exactly 30% below baseline.
    ([lesion(35)], 50.0, 50.0, PR),
    # SD: 29.8% below baseline.
    ([lesion(35.1)], 50.0, 50.0, SD),
    # PD: exactly 20% and 5 mm over the nadir (nadir 25 -> 30).
    ([lesion(30)], 50.0, 25.0, PD),
    # SD: 20% over the nadir but only 4 mm (nadir 20 -> 24); the 5 mm rule.
    ([lesion(24)], 30.0, 20.0, SD),
    # PD wins over PR: 40% below baseline yet 20% and 5 mm above nadir.
    ([lesion(30)], 50.0, 25.0, PD),
    # Too small to measure counts as 5 mm: 5 over nadir 0 is +5 mm, so PD.
    ([lesion(None, small=True)], 40.0, 0.0, PD),
    # Too small to measure is not CR (5 mm is not 0): 5 <= 70% of 40, so PR.
    ([lesion(None, small=True)], 40.0, 10.0, PR),
    # A lesion not evaluated makes NE ...
    ([lesion(None), lesion(20)], 50.0, 40.0, NE),
    # ... unless the evaluated lesions alone meet PD.
    ([lesion(None), lesion(60)], 50.0, 40.0, PD),
    # Nodes and non-nodal lesions add up: 12 + 20 = 32 vs nadir 26 is +23%, +6 mm.
    ([lesion(12, node=True), lesion(20)], 40.0, 26.0, PD),
]


@pytest.mark.parametrize(("lesions", "baseline", "nadir", "expected"), TARGET_RULES)
def test_target_rule(
    lesions: list[TargetLesion], baseline: float, nadir: float, expected: str
) -> None:
    assert recist.target_response(lesions, baseline, nadir) == expected


def test_timepoint_uses_nadir_not_baseline() -> None:
    assessment = recist.Assessment((lesion(36),), NON_CR_NON_PD, "no")
    # Baseline 50, nadir 30: 36 is 28% below baseline (SD) but +20% and +6 mm on nadir.
    assert recist.timepoint_response(assessment, [50.0, 30.0]) == PD


def test_timepoint_at_baseline_is_none() -> None:
    assessment = recist.Assessment((lesion(50),), NON_CR_NON_PD, "no")
    assert recist.timepoint_response(assessment, []) is None


def test_timepoint_without_targets() -> None:
    assessment = recist.Assessment((), CR, "no")
    assert recist.timepoint_response(assessment, [None]) == CR


def test_parse_rejects_bad_diameter() -> None:
    with pytest.raises(recist.AssessmentError, match=r"targets\[0\].diameter_mm"):
        recist.parse_assessment(
            {"targets": [{"site": "lung", "diameter_mm": "big"}], "non_target": CR}
        )


def test_parse_rejects_six_targets() -> None:
    targets = [{"site": f"s{i}", "diameter_mm": 10} for i in range(6)]
    with pytest.raises(recist.AssessmentError, match="at most 5"):
        recist.parse_assessment({"targets": targets})
