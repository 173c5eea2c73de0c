"""The referral portal: `create_app` builds the Flask application."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.config import Config, config_from_environment
from portal.logging_config import configure_logging


def create_app(config: type[Config] | None = None, **overrides: object) -> Flask:
    """Build the portal with `config` (default: the class PORTAL_ENV names)."""
    config = config or config_from_environment()
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config)
    app.config.update(overrides)
    if not app.config["SECRET_KEY"] and config.GENERATE_SECRET_KEY:
        from portal.signing_keys import instance_secret_key

        app.config["SECRET_KEY"] = instance_secret_key(app.instance_path)
    config.check(app.config)
    check_settings(app)

    configure_logging(app)
    configure_timeline_poll(app)  # before ProxyFix, so inside it
    configure_proxy(app)
    configure_request_ids(app)
    configure_converters(app)
    configure_request_bodies(app)  # before CSRFProtect, which reads the form
    configure_extensions(app)
    configure_i18n(app)
    configure_security(app)
    register_blueprints(app)
    register_health(app)
    register_template_helpers(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def check_settings(app: Flask) -> None:
    """What every environment must get right (production adds its own checks above)."""
    from portal.config import ConfigurationError
    from portal.notifications.sms import check_sms_settings

    check_sms_settings(app.config)
    if not 5 <= app.config["VISIT_MINUTES"] <= 480:
        raise ConfigurationError("VISIT_MINUTES must be between 5 and 480")


def configure_timeline_poll(app: Flask) -> None:
    from portal.referrals.timeline_poll import install_timeline_poll

    install_timeline_poll(app)


def configure_proxy(app: Flask) -> None:
    hops = app.config["TRUSTED_PROXY_COUNT"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def configure_request_ids(app: Flask) -> None:
    from portal.request_ids import install_request_ids

    install_request_ids(app)


def configure_converters(app: Flask) -> None:
    from portal.converters import install_converters

    install_converters(app)


def configure_request_bodies(app: Flask) -> None:
    from portal.request_bodies import install_request_body_checks

    install_request_body_checks(app)


def configure_extensions(app: Flask) -> None:
    from portal.accounts.sessions import configure_login
    from portal.extensions import csrf, db, htmx

    db.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    configure_login(app)


def configure_i18n(app: Flask) -> None:
    from portal.i18n import install_i18n

    install_i18n(app)


def configure_security(app: Flask) -> None:
    from portal.security import install_security_headers

    install_security_headers(app)


def register_blueprints(app: Flask) -> None:
    import portal.admin.fhir_clients  # noqa: F401 - adds the FHIR client pages to admin_bp
    from portal.accounts.routes import bp as accounts_bp
    from portal.admin.routes import bp as admin_bp
    from portal.fhir import install_fhir
    from portal.intake.routes import bp as intake_bp
    from portal.notifications.routes import bp as notifications_bp
    from portal.patients.routes import bp as patients_bp

    # Pages of the referrals blueprint kept in modules of their own.
    from portal.referrals import action_routes, draft_routes  # noqa: F401
    from portal.referrals.ratings import bp as ratings_bp
    from portal.referrals.routes import bp as referrals_bp
    from portal.scorecard.routes import bp as scorecard_bp
    from portal.service_lines.routes import bp as packets_bp

    app.register_blueprint(accounts_bp)
    app.register_blueprint(referrals_bp)
    app.register_blueprint(ratings_bp)
    app.register_blueprint(intake_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(patients_bp)
    app.register_blueprint(scorecard_bp)
    app.register_blueprint(packets_bp)
    install_fhir(app)
    # Every message's body, patient links included: development only, never deployed.
    if app.config["DEV_OUTBOX_PAGE"]:
        app.register_blueprint(notifications_bp)


def register_health(app: Flask) -> None:
    from portal.health import install_health

    install_health(app)


def register_template_helpers(app: Flask) -> None:
    from portal.templating import install_template_helpers

    install_template_helpers(app)


def register_error_handlers(app: Flask) -> None:
    from portal.errors import install_error_handlers

    install_error_handlers(app)


def register_commands(app: Flask) -> None:
    from portal.commands import install_commands

    install_commands(app)
