import pytest

from portal import create_app
from portal.config import Config, ConfigurationError


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)

    class Production(Config):
        SECRET_KEY = None

    with pytest.raises(ConfigurationError, match="SECRET_KEY is not set"):
        create_app(Production, DATABASE_URL="sqlite://")


def test_production_cookies_are_secure_by_default():
    assert Config.SESSION_COOKIE_SECURE is True
    assert Config.SESSION_COOKIE_HTTPONLY is True
    assert Config.SESSION_COOKIE_SAMESITE == "Lax"
