"""Form shapes; the rules for names and addresses live in ``newsletter.validation``."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Field, StringField
from wtforms.validators import ValidationError

from newsletter.validation import InvalidValue, clean_email, clean_name

__all__ = ["ButtonForm", "PreferencesForm", "SignupForm", "TickBox"]


def _name_rule(label: str) -> Any:
    def check(_form: FlaskForm, field: Field) -> None:
        try:
            field.data = clean_name(field.data, label)
        except InvalidValue as error:
            raise ValidationError(str(error)) from None

    return check


class TickBox(BooleanField):
    """A checkbox that counts as ticked only when it posts its own value.

    WTForms' BooleanField takes anything but ``false`` or nothing as ticked, so ``False``,
    ``0``, ``off`` or a space would stand as proof of consent. Only what the rendered box
    posts (``checked_value``) does here.
    """

    def __init__(self, label: str, checked_value: str = "y", **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.checked_value = checked_value

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.data = valuelist == [self.checked_value]

    def _value(self) -> str:
        return self.checked_value


class SignupForm(FlaskForm):
    first_name = StringField("First name", validators=[_name_rule("First name")])
    last_name = StringField("Last name", validators=[_name_rule("Last name")])
    email = EmailField("Email address")
    consent = TickBox("I agree")
    # Hidden from people (and screen readers); bots that fill every field give themselves away.
    website = StringField("Leave this field empty")

    def __init__(self, *args: Any, check_deliverability: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._check_deliverability = check_deliverability

    def validate_email(self, field: Field) -> None:
        try:
            field.data = clean_email(field.data, self._check_deliverability)
        except InvalidValue as error:
            raise ValidationError(str(error)) from None

    def validate_consent(self, field: Field) -> None:
        if not field.data:
            raise ValidationError("Tick the box to agree to receive our emails.")

    @property
    def is_bot(self) -> bool:
        return bool((self.website.data or "").strip())

    @property
    def csrf_failed(self) -> bool:
        return bool(self.errors.get("csrf_token"))


class ButtonForm(FlaskForm):
    """A form that is only a button (confirm, ask for a fresh link): CSRF and nothing else."""


class PreferencesForm(FlaskForm):
    """A person's own name on their preferences page: the signup form's rules."""

    first_name = StringField("First name", validators=[_name_rule("First name")])
    last_name = StringField("Last name", validators=[_name_rule("Last name")])

    @property
    def csrf_failed(self) -> bool:
        return bool(self.errors.get("csrf_token"))
