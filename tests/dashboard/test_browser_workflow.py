"""QC review, reading and adjudication driven in Debian's headless Chromium.

Screenshots go to test-output/screenshots/ next to those of the other pages.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import reads
from core.models import Case, Read
from tests.dashboard import test_browser
from tests.dashboard.reading_world import ReadingWorld, build, pass_and_assign
from tests.dashboard.test_browser import _login, _screenshot
from tests.web_factories import PASSWORD

pytestmark = pytest.mark.browser
# The live server and Chromium fixtures of the page tests.
base_url = test_browser.base_url
browser = test_browser.browser
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture
def reading(sessions: sessionmaker[Session]) -> ReadingWorld:
    return build(sessions)


def _choose(page: object, dropdown: str, option_text: str) -> None:
    page.click(dropdown)  # type: ignore[attr-defined]
    page.get_by_text(option_text).last.click()  # type: ignore[attr-defined]


def test_qc_pass_then_read_and_sign(
    browser: object,
    base_url: str,
    reading: ReadingWorld,
    sessions: sessionmaker[Session],
) -> None:
    case_id = reading.w8_case
    reviewer = browser.new_page(viewport=VIEWPORT)  # type: ignore[attr-defined]
    _login(reviewer, base_url, "qc_a")
    reviewer.goto(f"{base_url}/qc")
    _choose(reviewer, "#qc-case", f"Case {case_id}: ONC-301 S01 301-0001 W8")
    reviewer.get_by_text("required_series").first.wait_for(timeout=20000)
    _screenshot(reviewer, "qc_a-qc-review")
    reviewer.click("#qc-pass")
    reviewer.get_by_text(f"Case {case_id} passed QC; created 2 read tasks.").wait_for(
        timeout=20000
    )
    _screenshot(reviewer, "qc_a-qc-after-pass")

    # The assignment job's step, done directly: R1 to alice, R2 to bob.
    w8 = pass_and_assign(sessions, reading, case_id)
    reader = browser.new_page(viewport=VIEWPORT)  # type: ignore[attr-defined]
    _login(reader, base_url, "alice")
    reader.goto(f"{base_url}/reads")
    _choose(reader, "#reads-select", f"Read {w8['primary']}: ONC-301 301-0001 W8")
    reader.get_by_text("RECIST 1.1 assessment").wait_for(timeout=20000)

    # A missing diameter is named and nothing is saved.
    reader.fill("#reads-target-1-site", "liver segment 4")
    reader.click("#reads-save")
    reader.get_by_text("Target lesion 1 diameter (mm) is missing").wait_for(
        timeout=20000
    )
    _screenshot(reader, "alice-reads-missing-diameter")

    reader.fill("#reads-target-1-mm", "18")
    reader.fill("#reads-target-2-site", "liver segment 7")
    reader.fill("#reads-target-2-mm", "12")
    # The baseline had non-target lesions, so their status starts empty.
    _choose(reader, "#reads-non-target", "Non-CR/non-PD")
    reader.click("#reads-save")
    reader.get_by_text(
        "Saved. Sum of diameters 30 mm; timepoint response: PR."
    ).wait_for(timeout=20000)
    _screenshot(reader, "alice-reads-saved")

    reader.fill("#reads-sign-password", PASSWORD)
    reader.click("#reads-sign")
    reader.get_by_text(
        f"Signed read {w8['primary']}; the case is now reading."
    ).wait_for(timeout=20000)
    reader.get_by_text("Signed by Dr Alice").wait_for(timeout=20000)
    _screenshot(reader, "alice-reads-signed")

    with sessions() as session:
        case = session.get(Case, case_id)
        read = session.get(Read, w8["primary"])
        assert case is not None and read is not None
        assert case.state == "reading"
        assert read.state == "signed"
        assert read.response == "PR"
        assert read.signature_meaning == reads.READ_MEANING
        assert read.assessment is not None
        sites = [lesion["site"] for lesion in read.assessment["targets"]]
    assert sites == ["liver segment 4", "liver segment 7"]


def test_adjudicator_page_shows_both_assessments(
    browser: object,
    base_url: str,
    reading: ReadingWorld,
    sessions: sessionmaker[Session],
) -> None:
    w8 = pass_and_assign(sessions, reading, reading.w8_case)
    with sessions.begin() as session:
        for kind, name, sizes in (
            ("primary", "alice", [18, 12]),
            ("secondary", "bob", [27, 18]),
        ):
            lesions = [
                {"site": f"liver {i + 1}", "diameter_mm": mm}
                for i, mm in enumerate(sizes)
            ]
            reads.save_assessment(
                session, w8[kind], {"targets": lesions}, user_id=reading.users[name]
            )
            result = reads.sign(
                session, w8[kind], user_id=reading.users[name], password=PASSWORD
            )
        adjudication = result.adjudication_read_id
        assert adjudication is not None
        reads.assign_read(
            session, adjudication, reading.readers["carol"], actor="manager_a"
        )

    page = browser.new_page(viewport=VIEWPORT)  # type: ignore[attr-defined]
    _login(page, base_url, "carol")
    page.goto(f"{base_url}/reads")
    _choose(page, "#reads-select", f"Read {adjudication}:")
    page.get_by_text("Timepoint response: SD").wait_for(timeout=20000)
    page.get_by_text("Timepoint response: PR").wait_for(timeout=20000)
    page.get_by_label("Assessment A").check()
    page.fill("#reads-adjudication-reason", "lesion 2 shrank on the W8 scan")
    page.fill("#reads-adjudication-password", PASSWORD)
    _screenshot(page, "carol-reads-adjudication")
    page.click("#reads-adjudicate")
    page.get_by_text(f"Adjudicated read {adjudication}; the case is done.").wait_for(
        timeout=20000
    )
    with sessions() as session:
        chosen = session.get(Read, adjudication)
        assert chosen is not None
        assert chosen.chosen_read_id == w8["primary"]
