from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from portal.accounts.passwords import MIN_PASSWORD_LENGTH, password_problems
from portal.forms import PortalForm
from portal.models import STAFF_ROLES, Role


class SignInForm(PortalForm):
    email = EmailField(_l("Email address"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class SecondFactorForm(PortalForm):
    code = StringField(
        _l("Code"),
        description=_l(
            "The 6-digit code from your authenticator app, or one of your recovery codes."
        ),
        validators=[DataRequired(message=_l("Enter the code.")), Length(max=40)],
    )


class NewPasswordForm(PortalForm):
    """A new password, checked against the account it is for (set `account` first)."""

    password = PasswordField(
        _l("New password"),
        description=_l(
            "At least %(count)s characters. A few unrelated words "
            "make a strong password that is easy to remember.",
            count=MIN_PASSWORD_LENGTH,
        ),
        validators=[
            DataRequired(message=_l("Enter a password.")),
            Length(max=200, message=_l("Use at most 200 characters.")),
        ],
    )
    confirm = PasswordField(
        _l("Confirm the password"),
        validators=[
            DataRequired(message=_l("Enter the password again.")),
            EqualTo("password", message=_l("The two passwords do not match.")),
            Length(max=200, message=_l("Use at most 200 characters.")),
        ],
    )

    def __init__(self, *args, account=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def validate_password(self, field: PasswordField) -> None:
        problems = password_problems(
            field.data or "",
            email=self.account.email if self.account else "",
            full_name=self.account.full_name if self.account else "",
        )
        if problems:
            raise ValidationError(problems[0])


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Enter your current password.")), Length(max=200)],
    )


class ForgotPasswordForm(PortalForm):
    email = EmailField(
        _l("Email address"),
        validators=[
            DataRequired(message=_l("Enter your email address.")),
            Length(max=254),
        ],
    )


class ConfirmWithCodeForm(PortalForm):
    """Changes to the second factor itself ask for a current code first."""

    code = StringField(
        _l("Code from your authenticator app"),
        validators=[DataRequired(message=_l("Enter the code.")), Length(max=40)],
    )


class RoleForm(PortalForm):
    role = SelectField(
        _l("Role"),
        choices=[(r.value, r.label) for r in Role if r in STAFF_ROLES],
        validators=[DataRequired()],
    )
