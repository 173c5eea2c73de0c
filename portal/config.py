"""Settings, read from the environment.

`Config` is production: it refuses to start without a SECRET_KEY. `DevelopmentConfig`
is what the README's run command uses; `TestConfig` is what the test suite uses.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta


class ConfigurationError(RuntimeError):
    """The portal cannot start with the settings it was given."""


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    ENV_NAME = "production"
    # Signs the state cookie, CSRF tokens, invitations and patient links. Production
    # refuses a key that is missing, shorter than 32 bytes or published in the source or
    # README; development makes a random one in the instance folder.
    SECRET_KEY: str | None = os.environ.get("SECRET_KEY")
    # Old keys, comma separated, that still verify the state cookie and signed links
    # during a key rotation (docs/deploy.md); held to SECRET_KEY's rules.
    SECRET_KEY_FALLBACKS = [k for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k]
    # The database: `postgresql://user:password@host/name` (docs/deploy.md), or unset for
    # a SQLite file in the instance folder (`instance/portal.db`).
    DATABASE_URL: str | None = os.environ.get("DATABASE_URL")
    # Times are stored in UTC and shown and entered in the practice's zone (the admin's
    # business-hours zone, once set, overrides this default).
    PRACTICE_TIME_ZONE = os.environ.get("PRACTICE_TIME_ZONE", "America/New_York")
    # Dates, times and numbers follow this CLDR locale ("Mon, Nov 30, 2026, 2:30 PM EST"
    # in en_US); the date-of-birth boxes come in its order. Patients read English or
    # Spanish, in this locale's territory (es_US).
    PRACTICE_LOCALE = os.environ.get("PRACTICE_LOCALE", "en_US")
    # Base URL used in links inside messages (no request to read it from in jobs); at most
    # 40 characters (checked at start-up), so a text with a link fits one segment.
    PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000")
    # Number of reverse proxies in front of the portal whose X-Forwarded-* to trust. At 0
    # the client address is the socket's and X-Forwarded-For is ignored (sign-in
    # throttling, sessions and the audit log read it); behind one proxy, 1.
    TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
    # Log lines: "text" for people, "json" (one object a line) for log shippers. The
    # level is the portal's own loggers' (and gunicorn's); libraries log warnings only.
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")

    # Signing in makes a server-side session (a `user_session` row); its cookie carries
    # only a random token. Flask's own signed cookie holds nothing that signs anyone in:
    # the CSRF token's seed, flash messages and a patient's verified link.
    AUTH_COOKIE_NAME = "portal_session"
    SESSION_COOKIE_NAME = "portal_state"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Cookies travel over HTTPS only; off only for plain http on a developer's machine.
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    # Sessions end after this long without activity (pages that poll by themselves do
    # not count), and in any case this long after signing in.
    STAFF_IDLE_TIMEOUT = timedelta(minutes=int(os.environ.get("STAFF_IDLE_MINUTES", "30")))
    PARTNER_IDLE_TIMEOUT = timedelta(minutes=int(os.environ.get("PARTNER_IDLE_MINUTES", "120")))
    SESSION_ABSOLUTE_LIFETIME = timedelta(hours=int(os.environ.get("SESSION_HOURS", "12")))
    # Activity is written to the session row at most this often (one UPDATE a minute,
    # not one per page); a session may therefore end up to this much early.
    SESSION_TOUCH_INTERVAL = timedelta(seconds=60)
    # Between a correct password and the second factor (or setting one up).
    SECOND_FACTOR_PENDING_LIFETIME = timedelta(minutes=10)
    # How the second factor calls itself in authenticator apps.
    TOTP_ISSUER = os.environ.get("TOTP_ISSUER", "Referral portal")

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the browser session
    WTF_CSRF_SSL_STRICT = True

    # Uploads: the largest document, in bytes, enforced by the form. Flask refuses a
    # request larger than 12 of them (MAX_CONTENT_LENGTH); a proxy must allow as much.
    DOCUMENT_MAX_BYTES = int(os.environ.get("DOCUMENT_MAX_BYTES", str(10 * 1024 * 1024)))
    DOCUMENT_MAX_COUNT = 10
    MAX_CONTENT_LENGTH = 12 * DOCUMENT_MAX_BYTES
    # A referral draft (saved to finish later) is deleted this long after its last save.
    DRAFT_DAYS = int(os.environ.get("DRAFT_DAYS", "30"))

    # Argon2id parameters; a change makes existing hashes rehash at the next sign-in.
    ARGON2_TIME_COST = int(os.environ.get("ARGON2_TIME_COST", "3"))
    ARGON2_MEMORY_COST = int(os.environ.get("ARGON2_MEMORY_COST", str(64 * 1024)))
    ARGON2_PARALLELISM = int(os.environ.get("ARGON2_PARALLELISM", "4"))
    # New passwords: zxcvbn's score (0-4) at least this; 3 refuses common, breached and
    # guessable passwords without composition rules.
    PASSWORD_MIN_SCORE = 3

    # Wrong passwords and codes slow the guesser down, never lock the account: each
    # failure past the free ones doubles the wait (1 s, 2 s, 4 s ... at most
    # SIGN_IN_MAX_DELAY), counted per account and address pair, and per address.
    # Failures on one account from addresses it never signed in from are capped at
    # SIGN_IN_ACCOUNT_HOURLY_LIMIT an hour; the account's usual addresses (a sign-in in
    # the last SIGN_IN_FAMILIAR_DAYS) are not held by that cap.
    SIGN_IN_WINDOW = timedelta(hours=1)
    SIGN_IN_FREE_FAILURES_PER_PAIR = 5
    SIGN_IN_FREE_FAILURES_PER_ADDRESS = 20
    SIGN_IN_ACCOUNT_HOURLY_LIMIT = 100
    SIGN_IN_MAX_DELAY = timedelta(minutes=15)
    SIGN_IN_FAMILIAR_DAYS = 30

    # Forgotten passwords: how long a link works, and how many links an hour.
    PASSWORD_RESET_MAX_AGE = timedelta(minutes=30)
    PASSWORD_RESET_PER_EMAIL_HOURLY = 3  # from one address
    PASSWORD_RESET_PER_EMAIL_ALL_ADDRESSES_HOURLY = 10
    PASSWORD_RESET_PER_ADDRESS_HOURLY = 10

    INVITATION_MAX_AGE = timedelta(days=7)

    # Where urgent referrals are announced (the on-call intake mailbox), and where intake
    # hears about answers from partners and patients.
    INTAKE_ONCALL_EMAIL = os.environ.get("INTAKE_ONCALL_EMAIL", "intake-oncall@example.org")
    INTAKE_TEAM_EMAIL = os.environ.get("INTAKE_TEAM_EMAIL", "intake@example.org")

    # How the practice introduces itself to patients, and the number they can call.
    PRACTICE_NAME = os.environ.get("PRACTICE_NAME", "Northwind Telehealth")
    PRACTICE_PHONE = os.environ.get("PRACTICE_PHONE", "(202) 555-0100")
    # The name text messages start with: every text must fit one 160-character segment,
    # so it is at most 24 characters (SMS_NAME_MAX_LENGTH, checked at start-up; default:
    # PRACTICE_NAME, if that fits).
    PRACTICE_SMS_NAME = os.environ.get("PRACTICE_SMS_NAME")
    # The FHIR door (docs/fhir.md): how long an access token lasts (SMART Backend Services
    # asks for about five minutes), and how many calls a client may make a minute (past
    # it, 429 with Retry-After; every worker shares the count).
    FHIR_TOKEN_SECONDS = int(os.environ.get("FHIR_TOKEN_SECONDS", "300"))
    FHIR_CALLS_PER_MINUTE = int(os.environ.get("FHIR_CALLS_PER_MINUTE", "120"))
    # The largest message body POST /fhir/$process-message reads (refused with 413 before
    # it is read whole): room for a referral with a few documents sent inline as base64
    # (a third larger than the files), under the web form's 10 MB for a single upload.
    FHIR_MAX_BODY_BYTES = int(os.environ.get("FHIR_MAX_BODY_BYTES", str(8 * 1024 * 1024)))
    # How long a visit is, for the calendar file a patient adds it with.
    VISIT_MINUTES = int(os.environ.get("VISIT_MINUTES", "30"))
    # How many days a patient's link works.
    PATIENT_LINK_MAX_AGE = timedelta(days=int(os.environ.get("PATIENT_LINK_DAYS", "7")))
    PATIENT_LINK_MAX_TRIES = 5
    # How long a verified date of birth keeps a patient's link open in their browser.
    PATIENT_VERIFIED_FOR = timedelta(minutes=30)

    # Outgoing mail. MAIL_BACKEND "smtp" sends; "record" keeps messages in the outbox
    # only (development: read them on /dev/outbox).
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "smtp")
    # The SMTP relay, and how to reach it over TLS (one of the two).
    MAIL_HOST = os.environ.get("MAIL_HOST", "localhost")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "587"))
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", True)  # STARTTLS
    MAIL_USE_SSL = _bool("MAIL_USE_SSL", False)  # implicit TLS, usually port 465
    # The relay's credentials (unset: no AUTH), and the sender of every message.
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_FROM = os.environ.get("MAIL_FROM", "referrals@example.org")
    # How long each SMTP wait (the connection, one command's reply) may take.
    MAIL_TIMEOUT_SECONDS = int(os.environ.get("MAIL_TIMEOUT_SECONDS", "20"))
    # Text messages go through a provider interface (portal/notifications/backends.py).
    # "none" (production's default until a provider is plugged in): patients are written
    # to by email, and links cannot be sent by text. "record" (development) keeps texts
    # in the outbox only: never in production, where they would be marked sent unsent.
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "none")
    # The outbox page that shows every message (development only).
    DEV_OUTBOX_PAGE = False
    # How often the jobs process delivers; a run stops starting messages just before the
    # next is due, so the other jobs get their turn between runs.
    OUTBOX_DELIVERY_SECONDS = int(os.environ.get("OUTBOX_DELIVERY_SECONDS", "10"))
    # Messages one SMTP connection carries before the next batch opens a new one.
    OUTBOX_BATCH_SIZE = int(os.environ.get("OUTBOX_BATCH_SIZE", "100"))
    # A failure the provider answered (a refusal) counts an attempt: the message is
    # retried after 1, 2, 4 ... minutes and dead-lettered after OUTBOX_MAX_ATTEMPTS. A
    # provider that cannot be reached at all costs no attempt: the message backs off the
    # same way up to OUTBOX_UNREACHABLE_RETRY_MAX_SECONDS and waits for the outage's end.
    OUTBOX_MAX_ATTEMPTS = 8
    OUTBOX_RETRY_BASE_SECONDS = 60
    OUTBOX_UNREACHABLE_RETRY_MAX_SECONDS = 300
    # Staff pages say messages are held up when one has waited, failing, this long.
    OUTBOX_LATE_MINUTES = int(os.environ.get("OUTBOX_LATE_MINUTES", "30"))
    # Messages are claimed one at a time, just before each is sent; a claimed message
    # that was neither sent nor failed (its runner died) is due again after this. The
    # default outlasts the longest one email can take: 15 SMTP waits
    # (SMTP_WAITS_PER_MESSAGE in portal/notifications/backends.py) of MAIL_TIMEOUT_SECONDS.
    OUTBOX_CLAIM_SECONDS = int(
        os.environ.get("OUTBOX_CLAIM_SECONDS", str(15 * MAIL_TIMEOUT_SECONDS))
    )

    # How often an open referral page asks whether its timeline changed.
    TIMELINE_POLL_SECONDS = int(os.environ.get("TIMELINE_POLL_SECONDS", "5"))

    QUEUE_PAGE_SIZE = 50
    # A new referral for a patient (same name and date of birth) the same office sent
    # this many days ago or less, still open, asks for "submit anyway".
    DUPLICATE_WINDOW_DAYS = int(os.environ.get("DUPLICATE_WINDOW_DAYS", "30"))

    # --- Schedules: every timing rule, with its default, in one place. -------------
    # Business time runs on this week unless an admin has set another (and holidays).
    BUSINESS_HOURS = {day: ("09:00", "17:00") for day in range(5)} | {5: None, 6: None}
    # Each web worker and the jobs process keep the business hours, holidays and SLA
    # targets in memory and check at most this often whether an admin changed them: a
    # change reaches the other processes within this many seconds (its own at once).
    SETTINGS_CACHE_SECONDS = int(os.environ.get("SETTINGS_CACHE_SECONDS", "5"))
    # SLA targets in business minutes, by stage and urgency (PRODUCT.md's defaults:
    # urgent 1 h / 4 h / 1 business day / 1 business day; routine 1 / 2 / 3 / 2 days).
    # A business day is 8 business hours. Admins override these per stage and urgency.
    SLA_TARGET_MINUTES = {
        ("first_touch", "urgent"): 60,
        ("triage", "urgent"): 240,
        ("next_step", "urgent"): 480,
        ("partner_feedback", "urgent"): 480,
        ("first_touch", "routine"): 480,
        ("triage", "routine"): 960,
        ("next_step", "routine"): 1440,
        ("partner_feedback", "routine"): 960,
    }
    # The visit stage is due this long after the appointment (record its outcome).
    SLA_VISIT_OUTCOME_MINUTES = 480
    SLA_AT_RISK_FRACTION = 0.75
    # How often the jobs process tags breached and at-risk clocks.
    SLA_SWEEP_SECONDS = int(os.environ.get("SLA_SWEEP_SECONDS", "60"))
    # The no-referral-goes-dark check reads every open referral: less often than the sweep.
    SLA_COVERAGE_SECONDS = int(os.environ.get("SLA_COVERAGE_SECONDS", "600"))
    # Needs-info follow-ups: partner reminders this many business minutes after the
    # request (4 business hours, 1 and 3 business days), then escalation.
    NEEDS_INFO_REMINDER_MINUTES = (240, 480, 1440)
    NEEDS_INFO_ESCALATE_MINUTES = 1920
    # Patient next-step reminders after the link was sent, then a flag to phone them.
    PATIENT_REMINDER_MINUTES = (480, 960)
    PATIENT_PHONE_FLAG_MINUTES = 1440
    # Appointment reminders go this long before the visit (wall-clock hours).
    APPOINTMENT_REMINDER_HOURS = 24
    # How often the jobs process sends the reminders and escalations that have come due.
    FOLLOW_UP_SECONDS = int(os.environ.get("FOLLOW_UP_SECONDS", "60"))
    # Where owners hear about breaches and escalations, and admins about referrals
    # that went dark (no clock where their status calls for one).
    CLINICAL_TEAM_EMAIL = os.environ.get("CLINICAL_TEAM_EMAIL", "clinical@example.org")
    PARTNER_SUCCESS_EMAIL = os.environ.get("PARTNER_SUCCESS_EMAIL", "partner-success@example.org")
    ADMIN_EMAIL = os.environ.get("ADMIN_EMAIL", "portal-admin@example.org")
    # On SQLite only one jobs process may run; the others wait on this lock file
    # (default: the database file's name plus `.jobs.lock`, beside it).
    JOBS_LOCK_FILE = os.environ.get("JOBS_LOCK_FILE")
    # The jobs process writes a heartbeat this often; /readyz fails and staff pages show
    # a red banner when the last one is older than JOBS_STALE_MINUTES. Web processes
    # read it at most every JOBS_STATUS_CACHE_SECONDS.
    JOBS_HEARTBEAT_SECONDS = int(os.environ.get("JOBS_HEARTBEAT_SECONDS", "30"))
    JOBS_STALE_MINUTES = int(os.environ.get("JOBS_STALE_MINUTES", "5"))
    JOBS_STATUS_CACHE_SECONDS = 30
    # When the jobs first run after the process starts: at once, to catch up.
    JOBS_START_AT = staticmethod(lambda: datetime.now(UTC))

    # --- Backups: the nightly archive and how many to keep (README: Backups). --------
    # The nightly backup in the jobs process: production takes one every night;
    # development and the tests do not.
    BACKUP_ENABLED = _bool("BACKUP_ENABLED", True)
    # Where archives go (unset: `backups` in the instance folder), readable by the
    # portal's user only (the folder 0700, archives 0600): they hold every patient's
    # details. Retention deletes nothing there but files named like an archive.
    BACKUP_DIR = os.environ.get("BACKUP_DIR")
    # The hour of the night (0 to 23), at the practice, after which the night's backup
    # is taken.
    BACKUP_HOUR = int(os.environ.get("BACKUP_HOUR", "3"))
    # Retention: the newest archive of each of the last N days and M ISO weeks that
    # have one.
    BACKUP_KEEP_DAILY = int(os.environ.get("BACKUP_KEEP_DAILY", "7"))
    BACKUP_KEEP_WEEKLY = int(os.environ.get("BACKUP_KEEP_WEEKLY", "4"))
    # How often the jobs process asks whether the night's backup is due.
    BACKUP_CHECK_SECONDS = 300

    # Development makes a random key of its own, kept in the instance folder.
    GENERATE_SECRET_KEY = False

    @classmethod
    def check(cls, config: dict) -> None:
        """Refuse to start on settings that would be unsafe in production."""
        from portal.signing_keys import check_signing_keys

        check_signing_keys(config.get("SECRET_KEY"), config.get("SECRET_KEY_FALLBACKS", []))
        if config.get("SMS_BACKEND") == "record":
            raise ConfigurationError(
                "SMS_BACKEND=record keeps texts in memory and marks them sent without "
                "sending them: plug in a provider, or leave SMS_BACKEND unset (none) so "
                "patients are written to by email."
            )


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "record")
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "record")
    DEV_OUTBOX_PAGE = True
    GENERATE_SECRET_KEY = True
    BACKUP_ENABLED = _bool("BACKUP_ENABLED", False)
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    WTF_CSRF_SSL_STRICT = False

    @classmethod
    def check(cls, config: dict) -> None:
        """Any key will do on a developer's machine."""


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret-key"
    SESSION_COOKIE_SECURE = False
    DATABASE_URL = None  # the test fixtures always pass one
    # Cheap hashes keep the suite fast; the rehash test raises them explicitly.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8 * 1024
    ARGON2_PARALLELISM = 1
    TIMELINE_POLL_SECONDS = 1
    MAIL_BACKEND = "record"
    SMS_BACKEND = "record"
    MAIL_USE_TLS = False
    DEV_OUTBOX_PAGE = True
    BACKUP_ENABLED = False
    JOBS_STATUS_CACHE_SECONDS = 0
    SETTINGS_CACHE_SECONDS = 0  # a change made straight in the database is seen at once

    @classmethod
    def check(cls, config: dict) -> None:
        """The suite's key is published in the source on purpose."""


CONFIGS = {
    "production": Config,
    "development": DevelopmentConfig,
    "test": TestConfig,
}


def config_from_environment() -> type[Config]:
    """The settings class named by PORTAL_ENV (production when unset)."""
    # Which settings: production, development (scripts/run.sh: a key of its own, mail
    # kept for /dev/outbox, plain-http cookies, no nightly backup) or test (the suite).
    name = os.environ.get("PORTAL_ENV", "production")
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigurationError(
            f"PORTAL_ENV={name!r} is not one of {', '.join(sorted(CONFIGS))}"
        ) from None
