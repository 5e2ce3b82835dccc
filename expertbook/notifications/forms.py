"""A reusable WTForms validator against header injection."""
from __future__ import annotations

from wtforms.validators import StopValidation

from expertbook.notifications.service import name_problem


class HeaderSafeName:
    """A display name that can go into an email header: no line breaks, control characters or addresses."""

    def __call__(self, form, field) -> None:
        if field.data:
            problem = name_problem(field.data)
            if problem:
                raise StopValidation(problem)
