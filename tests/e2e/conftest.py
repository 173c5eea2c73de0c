"""A live portal on a free local port and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.fixtures.desk import totp_code

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    app.config["PORTAL_BASE_URL"] = base_url  # links in messages point here
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base_url
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def signed_in_page(browser, live_server, app):
    """`signed_in_page(email)`: a new browser context signed in as that user (staff give
    their second-factor code, computed from their key as their app would)."""
    contexts = []

    def open_as(email: str, **context_args):
        context = browser.new_context(**context_args)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.js_errors = errors
        page.goto(f"{live_server}/sign-in")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        if page.url.endswith("/sign-in/code"):
            with app.app_context():
                code = totp_code(email)
            page.get_by_label("Code").fill(code)
            page.get_by_role("button", name="Continue").click()
            page.wait_for_load_state()
        return page

    yield open_as
    for context in contexts:
        context.close()
