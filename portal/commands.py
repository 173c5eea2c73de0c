"""Command-line tasks: `flask --app wsgi db upgrade`, `flask --app wsgi demo load`, ..."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask.cli import AppGroup

from portal.extensions import db

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> AlembicConfig:
    return AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))


def current_revision() -> str | None:
    """The schema revision the configured database is at (None: no schema yet)."""
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the configured database's schema up to `revision` (inside an app context);
    returns the revisions it was at before and after."""
    before = current_revision()
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return before, current_revision()


def describe_upgrade(before: str | None, after: str | None) -> str:
    if before is None:
        return f"Created the schema at revision {after}."
    if before == after:
        return f"The schema is already at revision {after}; nothing to do."
    return f"Upgraded the schema from revision {before} to {after}."


def install_commands(app: Flask) -> None:
    db_group = AppGroup("db", help="Database schema (Alembic migrations).")

    @db_group.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade(revision: str) -> None:
        """Apply migrations up to REVISION (default: head)."""
        click.echo(describe_upgrade(*upgrade_database(revision)))

    @db_group.command("downgrade")
    @click.argument("revision")
    def downgrade(revision: str) -> None:
        """Undo migrations down to REVISION."""
        config = alembic_config()
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
        click.echo(f"Downgraded the schema to revision {current_revision()}.")

    demo_group = AppGroup("demo", help="Demo data for trying the portal.")

    @demo_group.command("load")
    @click.option("--referrals", default=200, show_default=True)
    @click.option("--seed", default=7, show_default=True)
    def load(referrals: int, seed: int) -> None:
        """Load demo partners, users, service lines and referrals (once)."""
        from portal.demo import (
            DEMO_FHIR_CLIENT_ID,
            DEMO_FHIR_SECRET,
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
        click.echo(
            "\nThe demo EHR (FHIR, docs/fhir.md): client id "
            f"{DEMO_FHIR_CLIENT_ID}, client secret {DEMO_FHIR_SECRET}"
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
    install_backup_commands(app)


def install_backup_commands(app: Flask) -> None:
    """`flask backup create | restore | list` (README: Backups)."""
    from portal.backups.archive import BackupError
    from portal.backups.operations import DIALECT_NAMES, create_backup, list_backups

    backup_group = AppGroup("backup", help="Back up the database, and restore a backup.")

    @backup_group.command("create")
    @click.option(
        "--output",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory to write the archive to (default: BACKUP_DIR).",
    )
    def create(output: Path | None) -> None:
        """Write one archive of the database and its manifest, while the portal runs."""
        try:
            backup = create_backup(output)
        except (BackupError, OSError) as problem:
            raise click.ClickException(str(problem)) from None
        manifest = backup.manifest
        click.echo(f"Wrote {backup.path} ({_size(backup.size)}) in {backup.seconds:.1f} s:")
        click.echo(
            f"  {DIALECT_NAMES[manifest.dialect]} at schema revision {manifest.schema_revision}, "
            + _rows(manifest.row_counts)
        )

    @backup_group.command("restore")
    @click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--force", is_flag=True, help="Replace a database that holds data.")
    def restore(archive: Path, force: bool) -> None:
        """Restore ARCHIVE into the (empty) database DATABASE_URL names, and check it."""
        from portal.backups.operations import restore_backup

        try:
            restored = restore_backup(archive, force=force)
        except (BackupError, OSError) as problem:
            raise click.ClickException(str(problem)) from None
        manifest = restored.manifest
        click.echo(f"{archive.name}: every file matches its checksum in the manifest.")
        click.echo(
            f"Restored it into {restored.target} in {restored.seconds:.1f} s"
            + (f", replacing {restored.replaced_rows:,} rows" if restored.replaced_rows else "")
            + ":"
        )
        click.echo(
            f"  taken     {manifest.created:%Y-%m-%d %H:%M:%S} UTC by portal "
            f"{manifest.portal_version} ({DIALECT_NAMES[manifest.dialect]})"
        )
        click.echo(f"  holds     {_rows(manifest.row_counts)}")
        checks = (
            "integrity_check and foreign_key_check ok, "
            if manifest.dialect == "sqlite"
            else "pg_restore ok, "
        )
        click.echo(f"  checks    {checks}row counts equal the manifest's")
        if manifest.schema_revision == restored.code_head:
            click.echo(f"  schema    revision {manifest.schema_revision}, the code's head")
        else:
            click.echo(
                f"  schema    revision {manifest.schema_revision}, older than the code's "
                f"head {restored.code_head}:\nRun `flask --app wsgi db upgrade` next."
            )

    @backup_group.command("list")
    @click.option(
        "--directory",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory to list (default: BACKUP_DIR).",
    )
    def list_(directory: Path | None) -> None:
        """List the archives, oldest first: when, schema revision, size."""
        listed = list_backups(directory)
        if not listed:
            click.echo("No backups yet.")
        for path, manifest in listed:
            size = _size(path.stat().st_size)
            if isinstance(manifest, BackupError):
                click.echo(f"{path.name}  unreadable: {manifest}  {size:>9}")
                continue
            click.echo(
                f"{path.name}  {manifest.created:%Y-%m-%d %H:%M} UTC  "
                f"{DIALECT_NAMES[manifest.dialect]:<10}  revision {manifest.schema_revision}  "
                f"{manifest.row_counts.get('referral', 0):>7,} referrals  {size:>9}"
            )

    app.cli.add_command(backup_group)


def _size(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _rows(counts: dict[str, int]) -> str:
    """Like "6,789 rows in 27 tables (referral 200, partner 3, user_account 9)"."""
    shown = ", ".join(
        f"{table} {counts[table]:,}"
        for table in ("referral", "partner", "user_account")
        if table in counts
    )
    return f"{sum(counts.values()):,} rows in {len(counts)} tables" + (
        f" ({shown})" if shown else ""
    )
