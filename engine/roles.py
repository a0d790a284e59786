"""The roles the engine knows: staff who act on a case, and the contacts a case has.

Workflow files name these; a typo is a load-time error. A council maps its people to staff roles
in ``config.yaml``.
"""

from __future__ import annotations

CASEWORK_ROLES: tuple[str, ...] = ("caseworker", "team_manager", "head_of_service")
"""The staff who take a case's steps (a workflow file's ``by``) and receive its reminders."""

STAFF_ROLES: tuple[str, ...] = CASEWORK_ROLES + ("administrator", "auditor")
"""Every staff role: an administrator looks after staff and settings (and on the command line may record
a step on a caseworker's behalf, which history says); an auditor reads everything and changes nothing."""

CONTACT_ROLES: tuple[str, ...] = (
    "parent",
    "young_person",
    "school",
    "post16_institution",
    "early_years_setting",
    "health",
    "social_care",
    "educational_psychologist",
    "other",
)

RECIPIENT_ROLES: tuple[str, ...] = CASEWORK_ROLES + CONTACT_ROLES

WORKFLOW_ROLE = "workflow"
"""The role of a step taken by another workflow of the same case (a signal), not by a person."""

ACTING_ROLES: tuple[str, ...] = CASEWORK_ROLES + (WORKFLOW_ROLE,)

CASE_FACTS: tuple[str, ...] = ("date_of_birth",)
"""Facts about the case itself that every instance holds from its start."""
