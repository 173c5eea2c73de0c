"""Command-line tasks: `flask --app wsgi db upgrade`, `flask --app wsgi demo load`, ..."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask
from flask.cli import AppGroup

from portal.extensions import db

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> AlembicConfig:
    return AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))


def upgrade_database(revision: str = "head") -> None:
    """Bring the configured database's schema up to `revision` (inside an app context)."""
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def install_commands(app: Flask) -> None:
    db_group = AppGroup("db", help="Database schema (Alembic migrations).")

    @db_group.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade(revision: str) -> None:
        """Apply migrations up to REVISION (default: head)."""
        upgrade_database(revision)
        click.echo(f"Database is at {revision}.")

    @db_group.command("downgrade")
    @click.argument("revision")
    def downgrade(revision: str) -> None:
        """Undo migrations down to REVISION."""
        config = alembic_config()
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
        click.echo(f"Database is at {revision}.")

    demo_group = AppGroup("demo", help="Demo data for trying the portal.")

    @demo_group.command("load")
    @click.option("--referrals", default=200, show_default=True)
    @click.option("--seed", default=7, show_default=True)
    def load(referrals: int, seed: int) -> None:
        """Load demo partners, users, service lines and referrals (once)."""
        from portal.demo import (
            DEMO_PASSWORD,
            DEMO_USERS,
            demo_already_loaded,
            demo_totp_secret,
            load_demo_data,
        )

        if demo_already_loaded():
            click.echo("Demo data is already loaded.")
        else:
            summary = load_demo_data(referral_count=referrals, seed=seed)
            click.echo(f"Loaded {summary}.")

        click.echo("\nDemo sign-ins (password for all: " + DEMO_PASSWORD + "):")
        for email, _name, role, _partner in DEMO_USERS:
            click.echo(f"  {role.label:<18} {email}")
        secret = demo_totp_secret()
        if secret:
            click.echo(
                "\nStaff then enter a code from an authenticator app set up with the key "
                f"{secret}\n(or print the current code: .venv/bin/flask --app wsgi demo code)."
            )

    @demo_group.command("code")
    def code() -> None:
        """Print the demo staff accounts' current second-factor code."""
        import pyotp

        from portal.demo import demo_totp_secret

        secret = demo_totp_secret()
        if not secret:
            raise click.ClickException("The demo desk is not loaded.")
        click.echo(pyotp.TOTP(secret).now())

    users_group = AppGroup("users", help="Accounts.")

    @users_group.command("invite-admin")
    @click.argument("email")
    @click.argument("full_name")
    def invite_admin(email: str, full_name: str) -> None:
        """Invite the first admin (or another one) and print the one-time link."""
        from portal.accounts.services import InvitationInvalid, invite_user
        from portal.models import Role
        from portal.notifications.outbox import portal_url

        try:
            link = invite_user(
                email=email, full_name=full_name, role=Role.ADMIN, partner=None, invited_by=None
            )
        except InvitationInvalid as invalid:
            raise click.ClickException(str(invalid)) from None
        db.session.commit()
        click.echo(f"Invitation for {email}: {portal_url('accounts.accept', token=link.token)}")

    app.cli.add_command(db_group)
    app.cli.add_command(demo_group)
    app.cli.add_command(users_group)
