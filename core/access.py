"""Access scopes: which studies a user may see and which facts of them.

Every query function in core that returns study data takes a `Scope` and filters on
it, so a page or callback that forgets a check still returns nothing outside the
user's studies. A request for a study outside the scope raises `AccessDenied`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import StudyGrant, User

# Roles that see every study; the others see only the studies granted to them.
ALL_STUDY_ROLES = frozenset({"admin", "leadership"})
# Sponsors are blinded (rule 4 of the design): no results, no reader identities.
RESULT_ROLES = frozenset({"admin", "leadership", "study_manager"})
READER_IDENTITY_ROLES = frozenset(
    {"admin", "leadership", "study_manager", "qc_reviewer", "reader"}
)


class AccessDenied(Exception):
    """The user's role or study scope does not allow the request."""


@dataclass(frozen=True)
class Scope:
    """The studies a user may see and whether results and reader names are visible."""

    username: str
    role: str
    study_ids: frozenset[int] | None  # None means every study
    sees_results: bool
    sees_reader_identities: bool

    def allows_study(self, study_id: int) -> bool:
        return self.study_ids is None or study_id in self.study_ids

    def require_study(self, study_id: int) -> None:
        if not self.allows_study(study_id):
            raise AccessDenied(f"study {study_id} is outside the scope of {self.role}")

    def require_reader_identities(self) -> None:
        if not self.sees_reader_identities:
            raise AccessDenied(f"role {self.role} may not see reader identities")

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise AccessDenied(f"role {self.role} is not one of {', '.join(roles)}")

    def studies_for(self, study_id: int | None) -> list[int] | None:
        """Return the study ids a query should cover; None means every study.

        A given study must be in the scope; without one, every study in the scope.
        """
        if study_id is not None:
            self.require_study(study_id)
            return [study_id]
        return None if self.study_ids is None else sorted(self.study_ids)

    def sql_params(self) -> dict[str, object]:
        """Return the bind parameters that `study_filter` conditions use."""
        return {
            "all_studies": self.study_ids is None,
            "study_ids": sorted(self.study_ids or ()),
        }


# Paste into a WHERE clause with the bind parameters from `Scope.sql_params`.
STUDY_FILTER = "(:all_studies OR {column} = ANY(CAST(:study_ids AS integer[])))"


def study_filter(column: str) -> str:
    """Return the SQL condition that limits `column` (a study id) to the scope."""
    return STUDY_FILTER.format(column=column)


def make_scope(username: str, role: str, study_ids: frozenset[int]) -> Scope:
    """Build the scope of a role; admin and leadership see every study."""
    return Scope(
        username=username,
        role=role,
        study_ids=None if role in ALL_STUDY_ROLES else study_ids,
        sees_results=role in RESULT_ROLES,
        sees_reader_identities=role in READER_IDENTITY_ROLES,
    )


def granted_study_ids(session: Session, user_id: int) -> frozenset[int]:
    rows = session.scalars(
        select(StudyGrant.study_id).where(StudyGrant.user_id == user_id)
    )
    return frozenset(rows)


def scope_for_user(session: Session, user: User) -> Scope:
    return make_scope(user.username, user.role, granted_study_ids(session, user.id))
