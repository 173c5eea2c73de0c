"""Log lines carry the request's id, come out as text or JSON, and never hold a link token."""

from __future__ import annotations

import json
import logging
import re

import pytest

from portal import create_app
from portal.config import ConfigurationError, TestConfig
from portal.logging_config import OWN_LOGGERS, PortalLogHandler, configure_logging, redact_tokens
from portal.request_ids import HEADER

log = logging.getLogger("portal.test_logging")

TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) (?P<logger>\S+) "
    r"\[req=(?P<request_id>\S+)\] (?P<message>.*)"
)
GENERATED_ID = re.compile(r"[0-9a-f]{12}")


@pytest.fixture
def deployed_logging(capsys):
    """`configure(log_format, process)` sets logging up as a deployed process does, and
    returns a function reading the lines written since; the root logger is put back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in OWN_LOGGERS}

    def configure(log_format: str = "text", process: str = "web"):
        configure_logging({"LOG_FORMAT": log_format, "LOG_LEVEL": "INFO"}, process)
        capsys.readouterr()
        return lambda: capsys.readouterr().err.splitlines()

    yield configure
    root.handlers[:], level, own_levels = saved
    root.setLevel(level)
    for name, own_level in own_levels.items():
        logging.getLogger(name).setLevel(own_level)
    logging.captureWarnings(False)


@pytest.fixture
def logging_route(app):
    """A page that writes one log line, as any view would."""

    @app.get("/test-logging")
    def write_a_line():
        log.info("looked at the queue")
        return "ok"

    return "/test-logging"


def test_every_line_of_a_request_carries_the_id_its_response_header_carries(
    app, client, deployed_logging, logging_route
):
    lines = deployed_logging("text")
    response = client.get(logging_route)
    request_id = response.headers[HEADER]
    assert GENERATED_ID.fullmatch(request_id)
    [line] = [TEXT_LINE.fullmatch(line) for line in lines()]
    assert line["request_id"] == request_id
    assert (line["level"], line["logger"], line["message"]) == (
        "INFO",
        "portal.test_logging",
        "looked at the queue",
    )


def test_each_request_gets_its_own_id(client, logging_route):
    first, second = (client.get(logging_route).headers[HEADER] for _ in range(2))
    assert first != second


def test_lines_outside_a_request_say_so(deployed_logging):
    lines = deployed_logging("text", process="jobs")
    logging.getLogger("jobs").info("jobs process started with %d jobs", 3)
    [line] = [TEXT_LINE.fullmatch(line) for line in lines()]
    assert line["request_id"] == "-" and line["message"] == "jobs process started with 3 jobs"


def test_json_lines_parse_and_carry_the_request_id(app, client, deployed_logging, logging_route):
    lines = deployed_logging("json")
    response = client.get(logging_route)
    [line] = [json.loads(line) for line in lines()]
    assert line["request_id"] == response.headers[HEADER]
    assert line["logger"] == "portal.test_logging" and line["level"] == "INFO"
    assert line["message"] == "looked at the queue" and line["component"] == "web"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])


def test_configuring_again_replaces_the_handler_instead_of_adding_one(deployed_logging):
    deployed_logging("text")
    lines = deployed_logging("json", process="jobs")
    assert sum(isinstance(h, PortalLogHandler) for h in logging.getLogger().handlers) == 1
    log.warning("once")
    [line] = lines()
    assert json.loads(line)["component"] == "jobs"


def test_libraries_log_their_warnings_only(deployed_logging):
    lines = deployed_logging("text")
    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("apscheduler.scheduler").warning("Run time was missed")
    assert [TEXT_LINE.fullmatch(line)["message"] for line in lines()] == ["Run time was missed"]


def test_under_test_the_root_logger_stays_pytests_and_caplog_works(
    app, client, logging_route, caplog
):
    before = logging.getLogger().handlers[:]
    create_app(TestConfig, DATABASE_URL=app.config["DATABASE_URL"])
    assert logging.getLogger().handlers == before
    with caplog.at_level(logging.INFO, logger="portal"):
        client.get(logging_route)
    assert [r.getMessage() for r in caplog.records] == ["looked at the queue"]


@pytest.mark.parametrize("setting", [{"LOG_FORMAT": "xml"}, {"LOG_LEVEL": "LOUD"}])
def test_an_unknown_log_setting_stops_the_start(database_url, setting):
    with pytest.raises(ConfigurationError, match=next(iter(setting))):
        create_app(TestConfig, DATABASE_URL=database_url, **setting)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("/p/IjVk.ZmE-Nz_A", "/p/[token]"),
        ("/p/IjVk.ZmE-Nz_A/verify", "/p/[token]/verify"),
        ("/p/IjVk.ZmE-Nz_A/answer", "/p/[token]/answer"),
        ("/invitations/Xy.12-ab_C", "/invitations/[token]"),
        (
            "https://referrals.example.org/p/IjVk.ZmE/verify",
            "https://referrals.example.org/p/[token]/verify",
        ),
        ("/password/reset?token=abc.DEF-1", "/password/reset?token=[token]"),
        ("/password/reset?next=%2F&token=abc&x=1", "/password/reset?next=%2F&token=[token]&x=1"),
        (
            "Error handling request GET /p/IjVk.ZmE?x=1",
            "Error handling request GET /p/[token]?x=1",
        ),
        (
            '{"message": "Exception on /p/IjVk.ZmE [GET]"}',
            '{"message": "Exception on /p/[token] [GET]"}',
        ),
        ("/p/[token]/verify", "/p/[token]/verify"),
        ("/referrals/R-7K3M-9QXD", "/referrals/R-7K3M-9QXD"),
        ("/password/reset", "/password/reset"),
        ("/p", "/p"),
        ("/static/portal.css", "/static/portal.css"),
    ],
)
def test_redaction_takes_out_link_tokens_and_nothing_else(text, redacted):
    assert redact_tokens(text) == redacted


def test_a_token_in_a_message_or_traceback_is_redacted_in_both_formats(deployed_logging):
    token = "IjEyMzQ1Njc4OWFiY2RlZiI.Z3ZjWA.secretpart"
    for log_format in ("text", "json"):
        lines = deployed_logging(log_format)
        try:
            raise LookupError(f"no route for /p/{token}/verify")
        except LookupError:
            log.exception("Exception on /p/%s [GET]", token)
        written = "\n".join(lines())
        assert "Exception on /p/[token] [GET]" in written and "/p/[token]/verify" in written
        assert "secretpart" not in written


@pytest.fixture
def app_behind(database_url):
    def make(proxies: int):
        return create_app(TestConfig, DATABASE_URL=database_url, TRUSTED_PROXY_COUNT=proxies)

    return make


def test_a_trusted_proxys_request_id_is_kept(app_behind):
    response = app_behind(1).test_client().get("/sign-in", headers={HEADER: "lb-7f3a9c1e-22"})
    assert response.headers[HEADER] == "lb-7f3a9c1e-22"


def test_a_clients_request_id_is_ignored_without_a_trusted_proxy(app_behind):
    response = app_behind(0).test_client().get("/sign-in", headers={HEADER: "lb-7f3a9c1e-22"})
    assert GENERATED_ID.fullmatch(response.headers[HEADER])


@pytest.mark.parametrize("hostile", ["abc\r\nInjected: 1", "short", "x" * 65, "a b c d e f"])
def test_a_malformed_request_id_is_replaced_even_from_a_trusted_proxy(app_behind, hostile):
    # Werkzeug's client refuses line breaks in headers; the WSGI environ takes anything.
    response = (
        app_behind(1)
        .test_client()
        .get("/sign-in", environ_overrides={"HTTP_X_REQUEST_ID": hostile})
    )
    assert GENERATED_ID.fullmatch(response.headers[HEADER])
    assert "Injected" not in response.headers
