"""scripts/bench_pages.py's own parts: what counts as a wrong answer, how the figures are
compared with their bare references, and the load tools' counts. The benchmark itself
is run by hand: `bash scripts/bench-pages.sh`."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "scripts"))
import bench_pages  # noqa: E402 - a script, not a package
from bench_pages import Page, answer_problem, compare, format_table, parse_wrk  # noqa: E402


def problem_with(response, expected_status: int = 200) -> str | None:
    return answer_problem(
        response.status_code,
        dict(response.headers),
        response.get_data(as_text=True),
        expected_status,
    )


def test_a_redirect_to_sign_in_is_a_wrong_answer(client, desk):
    response = client.get("/queue")

    assert response.status_code == 302
    assert "redirected to sign-in" in problem_with(response)


def test_the_sign_in_page_itself_is_a_wrong_answer(client, desk):
    assert "the sign-in page" in problem_with(client.get("/sign-in"))


def test_a_signed_in_page_is_a_right_answer(client_for, desk):
    staff = client_for(desk.intake)
    assert problem_with(staff.get("/queue")) is None


@pytest.mark.parametrize(
    ("status", "headers", "expected", "problem"),
    [
        (500, {}, 200, "500 where 200 was expected"),
        (200, {}, 304, "200 where 304 was expected"),
        (302, {"Location": "/referrals/"}, 200, "302 where 200 was expected (to /referrals/)"),
        (303, {"Location": "/sign-in?next=%2Fqueue"}, 200, "redirected to sign-in"),
        (304, {}, 304, None),
        (200, {}, 200, None),
    ],
)
def test_an_answer_is_right_only_with_the_expected_status(status, headers, expected, problem):
    found = answer_problem(status, headers, "<p>page</p>", expected)
    if problem is None:
        assert found is None
    else:
        assert problem in found


PAGES = [
    Page("detail", "portal", "/r/1", reference="bare one", target=0.5),
    Page("list", "portal", "/r/", reference="bare fifty", target=0.5),
    Page("poll", "portal", "/r/1/t", 304, reference="bare hello", target=0.8),
    Page("bare hello", "bare", "/hello"),
    Page("bare one", "bare", "/one/1"),
    Page("bare fifty", "bare", "/fifty"),
]


def test_each_page_is_judged_by_the_median_of_its_rounds_ratios():
    rounds = {
        # Round ratios 0.25, 1.25 and 0.5: one fast round does not carry it.
        "detail": [100.0, 500.0, 100.0],
        # 0.5, 0.1 and 0.6: exactly half passes, though the list's median (50) is less
        # than half the reference's (110).
        "list": [50.0, 10.0, 60.0],
        "poll": [700.0, 800.0, 900.0],  # 0.7, 0.8, 0.9
        "bare hello": [1000.0, 1000.0, 1000.0],
        "bare one": [400.0, 400.0, 200.0],
        "bare fifty": [100.0, 100.0, 110.0],
    }
    cpu = {"detail": 4.0, "bare one": 1.0, "list": 3.0, "bare fifty": 1.5, "poll": 1.0}
    rows = {row.page.name: row for row in compare(PAGES, rounds, cpu)}

    assert rows["detail"].requests_per_second == 100.0
    assert rows["detail"].reference_per_second == 400.0
    assert rows["detail"].ratio == pytest.approx(0.5)
    assert rows["detail"].passed is True
    assert rows["detail"].cpu_ratio == pytest.approx(0.25)
    assert rows["list"].ratio == pytest.approx(0.5) and rows["list"].passed is True
    assert rows["poll"].ratio == pytest.approx(0.8) and rows["poll"].passed is True
    assert rows["poll"].cpu_ratio is None  # no CPU figure for bare hello
    assert rows["bare one"].ratio is None and rows["bare one"].passed is None

    rounds["detail"] = [90.0, 500.0, 100.0]  # 0.225, 1.25, 0.5: still the middle one
    rounds["bare one"] = [400.0, 400.0, 400.0]  # 0.225, 1.25, 0.25
    rows = {row.page.name: row for row in compare(PAGES, rounds, cpu)}
    assert rows["detail"].ratio == pytest.approx(0.25) and rows["detail"].passed is False

    table = format_table(list(rows.values())).splitlines()
    detail = next(line for line in table if line.startswith("detail"))
    assert detail.split()[-8:] == ["bare", "one", "400.0", "0.25", ">=", "0.5", "BELOW", "0.25"]
    assert "90 / 500 / 100" in detail and "4.00" in detail
    listing = next(line for line in table if line.startswith("list"))
    assert listing.split()[-5:] == ["0.50", ">=", "0.5", "PASS", "0.50"]
    poll = next(line for line in table if line.startswith("poll"))
    assert poll.split()[-5:] == ["0.80", ">=", "0.8", "PASS", "-"]
    bare = next(line for line in table if line.startswith("bare one"))
    assert "PASS" not in bare and "BELOW" not in bare and bare.split()[-1] == "1.00"  # CPU ms


def test_a_page_is_also_set_against_the_portals_floor_without_a_verdict():
    pages = [
        Page("detail", "portal", "/r/1", reference="bare one", target=0.5, floor="floor"),
        Page("floor", "portal", "/bench/floor", reference="bare one"),
        Page("bare one", "bare", "/one/1"),
    ]
    rounds = {
        "detail": [100.0, 120.0, 90.0],
        "floor": [200.0, 200.0, 300.0],  # 0.5, 0.6, 0.3 of it
        "bare one": [500.0, 500.0, 500.0],
    }
    rows = {row.page.name: row for row in compare(pages, rounds, {})}

    assert rows["detail"].floor_ratio == pytest.approx(0.5)
    assert rows["detail"].ratio == pytest.approx(0.2) and rows["detail"].passed is False
    assert rows["floor"].floor_ratio is None and rows["floor"].ratio == pytest.approx(0.4)
    assert rows["floor"].passed is None  # a reference point, not a target
    table = format_table(list(rows.values())).splitlines()
    assert table[0].split()[-3:] == ["ratio", "of", "floor"]
    detail = next(line for line in table if line.startswith("detail"))
    assert detail.split()[-4:] == ["0.5", "BELOW", "-", "0.50"]


WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:40123/queue
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    45.10ms   12.31ms 120.55ms   71.23%
    Req/Sec    88.46     15.20   130.00     68.33%
  532 requests in 3.01s, 21.32MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:    176.74
Transfer/sec:      7.08MB
"""


def test_wrk_summary_is_read_with_its_wrong_answers_and_socket_errors():
    load = parse_wrk(WRK_OUTPUT)

    assert load.requests == 532
    assert load.requests_per_second == 176.74
    assert load.wrong == 7
    assert load.socket_errors == 3


def test_a_clean_wrk_summary_has_nothing_wrong():
    clean = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    assert parse_wrk(clean).wrong == 0 and parse_wrk(clean).socket_errors == 0


def test_wrk_output_without_a_summary_is_refused():
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


class SignInRedirect(BaseHTTPRequestHandler):
    """Answers /ok with 200 and everything else with a redirect to sign-in."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the load tool expects

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/ok":
            self.send_response(200)
        else:
            self.send_response(302)
            self.send_header("Location", "/sign-in")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args):
        pass


@pytest.fixture
def redirecting_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SignInRedirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_python_load_tool_counts_answers_that_are_not_the_expected_status(redirecting_server):
    redirected = bench_pages.run_python_load(
        redirecting_server, Page("queue", "portal", "/queue"), 0.3, threads=2, connections=4
    )
    right = bench_pages.run_python_load(
        redirecting_server, Page("ok", "portal", "/ok"), 0.3, threads=2, connections=4
    )

    assert redirected.requests > 0 and redirected.wrong == redirected.requests
    assert right.requests > 0 and right.wrong == 0
    assert right.requests_per_second > 0
