"""Reusable WTForms validators against header injection, and the admin's retry button."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms.validators import StopValidation

from expertbook.notifications.service import address_problem, name_problem


class SingleEmailAddress:
    """Exactly one email address: CR/LF, commas, semicolons or angle brackets are refused (the form answers 422)."""

    def __call__(self, form, field) -> None:
        if field.data:
            problem = address_problem(field.data)
            if problem:
                raise StopValidation(problem)


class HeaderSafeName:
    """A display name that can go into an email header: no line breaks, control characters or addresses."""

    def __call__(self, form, field) -> None:
        if field.data:
            problem = name_problem(field.data)
            if problem:
                raise StopValidation(problem)


class RetryForm(FlaskForm):
    """Only the CSRF token: the retry button of a failed email."""
