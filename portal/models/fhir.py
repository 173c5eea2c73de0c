"""The FHIR door (issue 16): the referring EHRs registered as clients, their short-lived
tokens, the assertions already used, and the messages already answered.

A client belongs to one partner and acts through a user row of its own (role partner,
no password: it can never sign in to the web pages). Everything a client does is done
by that user through the same services as the web form, so referrals, events, audit
entries and notifications name it exactly as they would a person at the office.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.models.base import Base
from portal.models.partner import Partner
from portal.models.user import User

# The SMART scopes a client may hold (system/ scopes of SMART App Launch 2).
FHIR_SCOPES = (
    "system/ServiceRequest.c",  # submit: $process-message add-service-request
    "system/ServiceRequest.u",  # withdraw: revoke-service-request
    "system/Communication.c",  # answer a needs-info request: add-communication
    "system/Task.rs",
    "system/ServiceRequest.rs",
    "system/Communication.rs",
    "system/Appointment.rs",
)


class FhirClient(Base):
    """A partner's EHR, registered by an admin: it authenticates with a signed JWT (its
    public keys, or a JWKS URL) or a client secret (only its hash is kept)."""

    __tablename__ = "fhir_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The public identifier the EHR sends as `client_id` / the assertion's `iss`.
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id"), index=True)
    # The user row the client acts as (role partner, no password).
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), unique=True)
    # Argon2 hash of the client secret, when it has one (shown once, at registration or
    # rotation).
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    # Public keys for private_key_jwt: a JWKS document, or where to fetch it.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_url: Mapped[str | None] = mapped_column(String(500))
    # Space-separated, from FHIR_SCOPES.
    scopes: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    rotated_at: Mapped[datetime | None]
    # A revoked client's tokens stop working at once; the row stays for the audit log.
    revoked_at: Mapped[datetime | None]
    # Moves on with every new secret or key set: a token issued under another version
    # (its request checked the old credential as they changed) is refused.
    credential_version: Mapped[int] = mapped_column(default=0, server_default="0")

    partner: Mapped[Partner] = relationship(lazy="joined")
    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class FhirAccessToken(Base):
    """A bearer token (about five minutes). Only its SHA-256 is stored."""

    __tablename__ = "fhir_access_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("fhir_client.id", ondelete="CASCADE"), index=True
    )
    scopes: Mapped[str] = mapped_column(String(500))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # The client's credential_version when its credential was checked for this token.
    credential_version: Mapped[int] = mapped_column(default=0, server_default="0")

    client: Mapped[FhirClient] = relationship(lazy="joined")


class FhirAssertion(Base):
    """A client assertion's `jti`, kept until the assertion expires: a replay is refused."""

    __tablename__ = "fhir_assertion"
    __table_args__ = (UniqueConstraint("client_id", "jti"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("fhir_client.id", ondelete="CASCADE"))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class FhirMessage(Base):
    """A message already processed, by its MessageHeader id: a resent message gets the
    first answer again and changes nothing."""

    __tablename__ = "fhir_message"
    __table_args__ = (UniqueConstraint("client_id", "header_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("fhir_client.id", ondelete="CASCADE"))
    header_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"), index=True)


class FhirRateWindow(Base):
    """Requests per client per minute, counted in the database so every worker shares
    the limit (one upsert per call)."""

    __tablename__ = "fhir_rate_window"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("fhir_client.id", ondelete="CASCADE"), primary_key=True
    )
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
