from __future__ import annotations

from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from portal.accounts.passwords import MIN_PASSWORD_LENGTH, password_problems
from portal.forms import PortalForm
from portal.models import STAFF_ROLES, Role


class SignInForm(PortalForm):
    email = EmailField("Email address", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class SecondFactorForm(PortalForm):
    code = StringField(
        "Code",
        description="The 6-digit code from your authenticator app, or one of your recovery codes.",
        validators=[DataRequired(message="Enter the code."), Length(max=40)],
    )


class NewPasswordForm(PortalForm):
    """A new password, checked against the account it is for (set `account` first)."""

    password = PasswordField(
        "New password",
        description=f"At least {MIN_PASSWORD_LENGTH} characters. A few unrelated words "
        "make a strong password that is easy to remember.",
        validators=[
            DataRequired(message="Enter a password."),
            Length(max=200, message="Use at most 200 characters."),
        ],
    )
    confirm = PasswordField(
        "Confirm the password",
        validators=[
            DataRequired(message="Enter the password again."),
            EqualTo("password", message="The two passwords do not match."),
            Length(max=200, message="Use at most 200 characters."),
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
        "Current password",
        validators=[DataRequired(message="Enter your current password."), Length(max=200)],
    )


class ForgotPasswordForm(PortalForm):
    email = EmailField(
        "Email address",
        validators=[
            DataRequired(message="Enter your email address."),
            Length(max=254),
        ],
    )


class ConfirmWithCodeForm(PortalForm):
    """Changes to the second factor itself ask for a current code first."""

    code = StringField(
        "Code from your authenticator app",
        validators=[DataRequired(message="Enter the code."), Length(max=40)],
    )


class RoleForm(PortalForm):
    role = SelectField(
        "Role",
        choices=[(r.value, r.label) for r in Role if r in STAFF_ROLES],
        validators=[DataRequired()],
    )
