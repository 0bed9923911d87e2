"""The RECIST 1.1 entry form's checks, before anything reaches the core."""

from __future__ import annotations

import pytest

from dashboard.recist_form import (
    NODE,
    NOT_EVALUATED,
    TOO_SMALL,
    FormError,
    TargetRow,
    assessment_from_form,
    baseline_values,
    form_values,
)


def _rows(*rows: tuple[object, object, list[str]]) -> list[TargetRow]:
    filled = [TargetRow(*row) for row in rows]  # type: ignore[arg-type]
    return filled + [TargetRow(None, None, [])] * (5 - len(filled))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_rows(("liver", None, [])), "Target lesion 1 diameter (mm) is missing"),
        (_rows(("liver", "", [])), "Target lesion 1 diameter (mm) is missing"),
        (
            _rows(("liver", 10, []), ("lung", -1, [])),
            "Target lesion 2 diameter (mm) is -1",
        ),
        (
            _rows(("liver", "abc", [])),
            "Target lesion 1 diameter (mm) is 'abc', not a number",
        ),
        (_rows(("liver", float("nan"), [])), "Target lesion 1 diameter (mm) is nan"),
        (_rows((None, 12, [])), "Target lesion 1 site is missing"),
        (_rows(("  ", None, [NODE])), "Target lesion 1 site is missing"),
        (
            _rows(("liver", 12, [TOO_SMALL])),
            "Target lesion 1 has a diameter and is marked",
        ),
        (
            _rows(("liver", None, [TOO_SMALL, NOT_EVALUATED])),
            "Target lesion 1: choose either too small or not evaluated",
        ),
    ],
)
def test_invalid_row_names_field(rows: list[TargetRow], message: str) -> None:
    with pytest.raises(FormError) as caught:
        assessment_from_form(rows, "absent", "no")
    assert message in str(caught.value)


def test_missing_statuses_named() -> None:
    with pytest.raises(FormError, match="Non-target lesions is missing"):
        assessment_from_form(_rows(), None, "no")
    with pytest.raises(FormError, match="New lesions is missing"):
        assessment_from_form(_rows(), "absent", "")


def test_filled_rows_become_lesions() -> None:
    rows = _rows(
        ("liver segment 4", "18.5", []),
        ("", None, []),
        ("mediastinal node", 9, [NODE]),
        ("lung", None, [TOO_SMALL]),
        ("adrenal", None, [NOT_EVALUATED]),
    )
    data = assessment_from_form(rows, "non-CR/non-PD", "equivocal")
    assert data["non_target"] == "non-CR/non-PD"
    assert data["new_lesions"] == "equivocal"
    assert data["targets"] == [
        {
            "site": "liver segment 4",
            "diameter_mm": 18.5,
            "is_node": False,
            "too_small": False,
        },
        {
            "site": "mediastinal node",
            "diameter_mm": 9.0,
            "is_node": True,
            "too_small": False,
        },
        {"site": "lung", "diameter_mm": None, "is_node": False, "too_small": True},
        {"site": "adrenal", "diameter_mm": None, "is_node": False, "too_small": False},
    ]


def test_saved_assessment_refills_form() -> None:
    rows = _rows(
        ("liver", 18, []),
        ("node", 9, [NODE]),
        ("lung", None, [TOO_SMALL]),
        ("adrenal", None, [NOT_EVALUATED]),
    )
    saved = assessment_from_form(rows, "CR", "no")
    values = form_values(saved)
    assert len(values) == 17
    assert values[0:3] == ["liver", 18.0, []]
    assert values[3:6] == ["node", 9.0, [NODE]]
    assert values[6:9] == ["lung", None, [TOO_SMALL]]
    assert values[9:12] == ["adrenal", None, [NOT_EVALUATED]]
    assert values[12:15] == [None, None, []]
    assert values[15:] == ["CR", "no"]
    assert (
        assessment_from_form(
            [TargetRow(*values[i : i + 3]) for i in range(0, 15, 3)], *values[15:]
        )
        == saved
    )


def test_baseline_values_fill_sites_only() -> None:
    lesions = [
        {"site": "liver", "is_node": False},
        {"site": "hilar node", "is_node": True},
    ]
    values = baseline_values(
        {"baseline_targets": lesions, "baseline_non_target": "absent"}
    )
    assert values[0:3] == ["liver", None, []]
    assert values[3:6] == ["hilar node", None, [NODE]]
    assert values[6:9] == [None, None, []]
    assert values[15:] == ["absent", "no"]

    with_non_target = baseline_values(
        {"baseline_targets": lesions, "baseline_non_target": "non-CR/non-PD"}
    )
    assert with_non_target[15:] == [None, "no"]
