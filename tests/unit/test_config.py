import secrets

import pytest

from portal import create_app
from portal.config import Config, ConfigurationError, DevelopmentConfig
from portal.signing_keys import instance_secret_key

# Written here, so it is published: production must refuse it.
KEY_PUBLISHED_IN_THE_TEST_SUITE = "this-key-is-written-in-the-test-suite-so-anyone-can-read-it"


def production(key, fallbacks=()):
    class Production(Config):
        SECRET_KEY = key
        SECRET_KEY_FALLBACKS = list(fallbacks)

    return Production


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "SECRET_KEY is not set"),
        ("", "SECRET_KEY is not set"),
        ("a", "shorter than 32 bytes"),
        ("x" * 31, "shorter than 32 bytes"),
        ("development-only-secret-key-not-for-real-use", "published"),
        (KEY_PUBLISHED_IN_THE_TEST_SUITE, "published"),
    ],
)
def test_production_refuses_to_start_with_a_weak_or_published_key(key, message):
    with pytest.raises(ConfigurationError, match=message) as refused:
        create_app(production(key), DATABASE_URL="sqlite://")
    assert "secrets.token_urlsafe(48)" in str(refused.value)  # says how to make one


def test_every_fallback_key_is_held_to_the_same_rule():
    with pytest.raises(ConfigurationError, match="FALLBACKS entry 1 is shorter"):
        create_app(production(secrets.token_urlsafe(48), ["old"]), DATABASE_URL="sqlite://")


def test_production_starts_with_a_random_key():
    app = create_app(production(secrets.token_urlsafe(48)), DATABASE_URL="sqlite://")
    assert app.config["SECRET_KEY"]


def test_development_makes_its_own_random_key_once(tmp_path):
    key = instance_secret_key(str(tmp_path))
    assert len(key) >= 48 and instance_secret_key(str(tmp_path)) == key
    assert (tmp_path / "development-secret-key").stat().st_mode & 0o777 == 0o600
    assert DevelopmentConfig.GENERATE_SECRET_KEY and not Config.GENERATE_SECRET_KEY


def test_production_cookies_are_secure_by_default():
    assert Config.SESSION_COOKIE_SECURE is True
    assert Config.SESSION_COOKIE_HTTPONLY is True
    assert Config.SESSION_COOKIE_SAMESITE == "Lax"
