"""The page benchmark: the portal's pages against a bare Flask + SQLAlchemy app.

    bash scripts/bench-pages.sh [--seconds 10] [--database-url URL]   # installs, then this

A fresh demo desk (`flask demo load`) in a scratch SQLite file, or in the PostgreSQL
database `--database-url` (or BENCH_PAGES_DATABASE_URL) names, which is emptied first.
The portal (development settings: plain-http cookies) and scripts/bench_bare_app.py both
run under gunicorn with the project's gunicorn.conf.py, 2 workers of 4 threads each
(GUNICORN_* from the environment still apply, e.g. GUNICORN_MAX_REQUESTS), on free
local ports; no jobs process runs, so nothing changes a timeline while it is measured.
A demo partner and the demo intake user sign in through the real forms (password,
CSRF token, and for staff the second-factor code from the demo's TOTP key).

Each page is first checked: the status it should answer (200, or 304 for a timeline
asked with its ETag), never a redirect to sign-in. Then wrk (or, where wrk is missing,
a Python load tool of the same shape) loads each URL in turn, every round visiting
all of them. A page's ratio is the median, over the rounds, of its requests/s divided
by the bare page's of the same kind in the same round (the two are measured a minute
apart at most, so a machine that slows down for a while slows both). Each ratio is
printed with its target, PASS or BELOW: exit 0 either way (a measurement, not a test),
exit 1 when a page answered wrongly. CPU ms a request is the gunicorn processes' own
(from /proc), not the database server's; the CPU ratio beside it (the bare page's CPU
a request over the page's) is what the ratio tends to when neither app waits.

The portal is served with one page more (scripts/bench_floor_app.py): its floor, a
signed-in page that audits its view and renders the layout around one line. It is
measured against the bare one-row page, and each portal page against it too ("of
floor", no target): what a page costs beyond what every portal page costs.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from portal.database import empty_postgresql, normalise_database_url  # noqa: E402
from portal.demo import DEMO_PASSWORD  # noqa: E402

PARTNER_EMAIL = "partner@maple.example"
STAFF_EMAIL = "intake@portal.example"
# Only the sign-in page asks for the current password: a page showing it is a page
# that did not know who was asking.
SIGN_IN_MARKER = 'autocomplete="current-password"'
SERVER_START_SECONDS = 90


# --- What each URL should answer, and how the figures compare. ---------------------


@dataclass(frozen=True)
class Page:
    """A URL to load: whose cookies, what it must answer, what it is compared with."""

    name: str
    server: str  # "portal" or "bare"
    path: str
    expected_status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    reference: str | None = None  # the bare page's name
    target: float | None = None  # the least ratio to the reference that passes
    floor: str | None = None  # the portal's floor page, compared without a target


@dataclass(frozen=True)
class Row:
    page: Page
    requests_per_second: float
    rounds: list[float]
    cpu_ms_per_request: float | None
    reference_per_second: float | None = None
    reference_rounds: list[float] | None = None
    reference_cpu_ms: float | None = None
    floor_rounds: list[float] | None = None

    @property
    def ratio(self) -> float | None:
        """The median of the rounds' ratios, each round's page against its reference."""
        return median_ratio(self.rounds, self.reference_rounds)

    @property
    def floor_ratio(self) -> float | None:
        """The same against the portal's floor page: how much is the page's own work."""
        return median_ratio(self.rounds, self.floor_rounds)

    @property
    def cpu_ratio(self) -> float | None:
        if not (self.cpu_ms_per_request and self.reference_cpu_ms):
            return None
        return self.reference_cpu_ms / self.cpu_ms_per_request

    @property
    def passed(self) -> bool | None:
        if self.ratio is None or self.page.target is None:
            return None
        return self.ratio >= self.page.target


def median_ratio(rounds: list[float], reference_rounds: list[float] | None) -> float | None:
    if reference_rounds is None:
        return None
    return statistics.median(
        (page / reference if reference > 0 else float("inf") if page > 0 else 0.0)
        for page, reference in zip(rounds, reference_rounds, strict=True)
    )


def answer_problem(
    status: int, headers: Mapping[str, str], body: str, expected_status: int
) -> str | None:
    """What is wrong with an answer (None: it is the one expected). A redirect to
    sign-in, or the sign-in form itself, means the cookies did not sign anyone in."""
    location = next((v for k, v in headers.items() if k.lower() == "location"), "")
    if 300 <= status < 400 and status != 304 and "/sign-in" in location:
        return f"{status}: redirected to sign-in ({location})"
    if status != expected_status:
        return f"{status} where {expected_status} was expected" + (
            f" (to {location})" if location else ""
        )
    if SIGN_IN_MARKER in body:
        return f"{status}, but the sign-in page"
    return None


def compare(pages: Iterable[Page], rounds: Mapping[str, list[float]], cpu: Mapping) -> list[Row]:
    """One row a page: its median requests/s over the rounds, beside its reference's."""
    medians = {name: statistics.median(values) for name, values in rounds.items()}
    return [
        Row(
            page=page,
            requests_per_second=medians[page.name],
            rounds=list(rounds[page.name]),
            cpu_ms_per_request=cpu.get(page.name),
            reference_per_second=medians[page.reference] if page.reference else None,
            reference_rounds=list(rounds[page.reference]) if page.reference else None,
            reference_cpu_ms=cpu.get(page.reference) if page.reference else None,
            floor_rounds=list(rounds[page.floor]) if page.floor else None,
        )
        for page in pages
    ]


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'page':<24} {'req/s':>8}  {'rounds':<20} {'CPU ms/req':>10}  "
        f"{'bare reference':<14} {'req/s':>8} {'ratio':>6}  {'target':<7} {'result':<6} "
        "CPU ratio  of floor"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        rounds = " / ".join(f"{value:.0f}" for value in row.rounds)
        cpu = "-" if row.cpu_ms_per_request is None else f"{row.cpu_ms_per_request:.2f}"
        line = f"{row.page.name:<24} {row.requests_per_second:>8.1f}  {rounds:<20} {cpu:>10}"
        if row.ratio is not None:
            target = f">= {row.page.target:.1f}" if row.page.target is not None else ""
            verdict = {True: "PASS", False: "BELOW", None: ""}[row.passed]
            cpu_ratio = "-" if row.cpu_ratio is None else f"{row.cpu_ratio:.2f}"
            floor = "" if row.floor_ratio is None else f"{row.floor_ratio:.2f}"
            line += (
                f"  {row.page.reference:<14} {row.reference_per_second:>8.1f} "
                f"{row.ratio:>6.2f}  {target:<7} {verdict:<6} {cpu_ratio:>9}  {floor:>8}"
            )
        lines.append(line.rstrip())
    return "\n".join(lines)


# --- Load: wrk, or threads over keep-alive connections. ----------------------------


@dataclass(frozen=True)
class Load:
    requests: int
    requests_per_second: float
    wrong: int  # answers that were not the expected kind (wrk: not 2xx or 3xx)
    socket_errors: int


WRK_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
WRK_RATE = re.compile(r"^Requests/sec:\s*([\d.]+)", re.MULTILINE)
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str) -> Load:
    """wrk's summary: requests done, requests/s, answers not 2xx/3xx, socket errors."""
    requests, rate = WRK_REQUESTS.search(output), WRK_RATE.search(output)
    if not requests or not rate:
        raise ValueError(f"wrk printed no summary:\n{output}")
    non_2xx = WRK_NON_2XX.search(output)
    socket_errors = WRK_SOCKET.search(output)
    return Load(
        requests=int(requests.group(1)),
        requests_per_second=float(rate.group(1)),
        wrong=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, socket_errors.groups())) if socket_errors else 0,
    )


def run_wrk(port: int, page: Page, seconds: float, threads: int, connections: int) -> Load:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    for name, value in page.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{port}{page.path}")
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return parse_wrk(done.stdout)


def _reset_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop


def _load_in_process(
    port: int, path: str, headers: dict, seconds: float, connections: int
) -> tuple[Counter, int, float]:
    """`connections` threads, each one keep-alive connection asking for `path` until
    the time is up: statuses seen, socket errors, seconds taken."""
    statuses: Counter = Counter()
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def hammer() -> None:
        seen: Counter = Counter()
        failed = 0
        connection = None
        while time.monotonic() < deadline:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                seen[response.status] += 1
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection = None
        if connection is not None:
            connection.close()
        with lock:
            statuses.update(seen)
            errors[0] += failed

    started = time.monotonic()
    workers = [threading.Thread(target=hammer, daemon=True) for _ in range(connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses, errors[0], time.monotonic() - started


def run_python_load(port: int, page: Page, seconds: float, threads: int, connections: int) -> Load:
    """wrk's shape in Python: `threads` processes sharing `connections` connections."""
    shares = [connections // threads + (i < connections % threads) for i in range(threads)]
    with multiprocessing.get_context("fork").Pool(threads, initializer=_reset_signals) as pool:
        try:
            jobs = [
                pool.apply_async(
                    _load_in_process,
                    (port, page.path, dict(page.headers), seconds, share),
                )
                for share in shares
                if share
            ]
            results = [job.get(timeout=seconds + 60) for job in jobs]
        finally:
            pool.terminate()
    statuses = sum((statuses for statuses, _e, _s in results), Counter())
    requests = sum(statuses.values())
    elapsed = max(taken for _st, _e, taken in results)
    return Load(
        requests=requests,
        requests_per_second=requests / elapsed if elapsed else 0.0,
        wrong=requests - statuses[page.expected_status],
        socket_errors=sum(errors for _st, errors, _s in results),
    )


# --- Server CPU, from /proc (Linux; elsewhere the column shows "-"). ---------------


def _stat_fields(pid: int | str) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2 :].split()  # the name may hold spaces


def server_cpu_seconds(master_pid: int) -> float | None:
    """CPU used so far by a gunicorn master, its workers and the workers it replaced."""
    try:
        fields = _stat_fields(master_pid)
    except (OSError, ValueError):
        return None
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            child = _stat_fields(entry)
        except (OSError, ValueError):
            continue  # ended since the listing
        if int(child[1]) == master_pid:
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- Processes: started with their pids on record, always stopped. ------------------


class Processes:
    """The servers this run started; their pids are kept in `pid_file` too, so the
    shell script can stop them even if this process is killed outright."""

    def __init__(self, pid_file: Path | None) -> None:
        self.pid_file = pid_file
        self.running: list[subprocess.Popen] = []

    def start(self, command: list[str], env: dict, log_name: Path) -> subprocess.Popen:
        with (
            log_name.with_suffix(".out").open("w") as out,
            log_name.with_suffix(".err").open("w") as err,
        ):
            process = subprocess.Popen(  # noqa: S603 - our own servers
                command, cwd=PROJECT, env=env, stdout=out, stderr=err, start_new_session=True
            )
        self.running.append(process)
        self._record()
        return process

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()
        self._record()

    def _record(self) -> None:
        if self.pid_file:
            alive = [str(p.pid) for p in self.running if p.poll() is None]
            self.pid_file.write_text("".join(f"{pid}\n" for pid in alive))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- A browser, as far as signing in needs one. ------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    sets_cookie: bool


class Browser:
    """Keeps cookies like a browser (one host, no expiry but deletion) over http.client."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers=None) -> Answer:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = self.cookie_header()
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            set_cookies = response.headers.get_all("Set-Cookie") or []
            answer = Answer(response.status, dict(response.headers), text, bool(set_cookies))
        finally:
            connection.close()
        for line in set_cookies:
            for name, morsel in SimpleCookie(line).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def submit(self, path: str, fields: dict) -> Answer:
        """Fetch the form at `path` and post `fields` with its CSRF token."""
        page = self.request("GET", path)
        match = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page.body)
        if page.status != 200 or not match:
            raise SystemExit(f"GET {path}: {page.status}, no sign-in form with a CSRF token")
        return self.request("POST", path, form={**fields, "csrf_token": match.group(1)})


def sign_in(browser: Browser, email: str, totp_secret: str | None) -> None:
    """Password, then (for staff) the code the demo's authenticator key shows now."""
    answer = browser.submit("/sign-in", {"email": email, "password": DEMO_PASSWORD})
    if answer.status != 302:
        raise SystemExit(f"{email}: sign-in answered {answer.status}")
    if answer.headers.get("Location", "").endswith("/sign-in/code"):
        import pyotp

        if not totp_secret:
            raise SystemExit(f"{email}: asked for a code, and has no authenticator key")
        answer = browser.submit("/sign-in/code", {"code": pyotp.TOTP(totp_secret).now()})
        if answer.status != 302 or "/sign-in" in answer.headers.get("Location", ""):
            raise SystemExit(f"{email}: the second factor answered {answer.status}")


# --- The run. ----------------------------------------------------------------------


def prepare_database(url: str, env: dict) -> str:
    """Empty a PostgreSQL database, migrate, load the demo desk; its one-line summary."""
    if url.startswith("postgresql"):
        empty_postgresql(url)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    for command in (["db", "upgrade"], ["demo", "load"]):
        done = subprocess.run(  # noqa: S603 - the portal's own commands
            flask + command, cwd=PROJECT, env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"flask {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    loaded = re.search(r"Loaded (.*)\.", done.stdout)
    return loaded.group(1) if loaded else "demo desk"


def read_demo(url: str) -> tuple[str | None, int, str, int]:
    """The staff TOTP key, and the partner's referral with the median number of
    partner-visible events: its id, reference and event count."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            secret = connection.execute(
                text("SELECT totp_secret FROM user_account WHERE email = :email"),
                {"email": STAFF_EMAIL},
            ).scalar()
            referrals = connection.execute(
                text(
                    "SELECT r.id, r.reference, COUNT(e.id) AS events FROM referral r"
                    " JOIN user_account u ON u.partner_id = r.partner_id"
                    " JOIN referral_event e ON e.referral_id = r.id AND e.partner_visible"
                    " WHERE u.email = :email GROUP BY r.id, r.reference ORDER BY events, r.id"
                ),
                {"email": PARTNER_EMAIL},
            ).all()
    finally:
        engine.dispose()
    if not referrals:
        raise SystemExit(f"{PARTNER_EMAIL} has no referral with events in the demo desk")
    referral_id, reference, events = referrals[len(referrals) // 2]
    return secret, referral_id, reference, events


def wait_until_up(process: subprocess.Popen, port: int, path: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server stopped at start-up:\n{tail(log)}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise SystemExit(f"no answer on port {port} after {SERVER_START_SECONDS} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_pages(pages: list[Page], ports: dict[str, int], when: str) -> tuple[list[str], list[str]]:
    """Ask each page once, as the load tool will: what answered wrongly, and what each
    answered (status, size, whether it set a cookie the load tool will not keep)."""
    problems, answers = [], []
    for page in pages:
        answer = Browser(ports[page.server]).request("GET", page.path, headers=page.headers)
        problem = answer_problem(answer.status, answer.headers, answer.body, page.expected_status)
        if problem:
            problems.append(f"{when}: {page.name} ({page.path}): {problem}")
        cookie = ", sets a cookie" if answer.sets_cookie else ""
        answers.append(f"{page.name} {answer.status} {len(answer.body) / 1024:.1f} kB{cookie}")
    return problems, answers


@dataclass
class Measured:
    """Each page's requests/s a round, server CPU ms a request, and what went wrong."""

    rates: dict[str, list[float]]
    cpu: dict[str, list[float]]
    problems: list[str]
    socket_errors: Counter


def start_servers(env: dict, processes: Processes, scratch: Path) -> tuple[dict, dict]:
    """The portal and the bare app under gunicorn.conf.py, each on a free port; their
    ports and their gunicorn masters' pids, once both answer."""
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    apps = {
        # wsgi.py's portal with the floor page (scripts/bench_floor_app.py).
        "portal": (gunicorn + ["--pythonpath", "scripts", "bench_floor_app:app"], "/healthz"),
        "bare": (gunicorn + ["--pythonpath", "scripts", "bench_bare_app:app"], "/hello"),
    }
    ports = {server: free_port() for server in apps}
    started = {
        server: processes.start(
            command, {**env, "GUNICORN_BIND": f"127.0.0.1:{ports[server]}"}, scratch / server
        )
        for server, (command, _ready_path) in apps.items()
    }
    for server, (_command, ready_path) in apps.items():
        wait_until_up(started[server], ports[server], ready_path, scratch / f"{server}.err")
    return ports, {server: process.pid for server, process in started.items()}


def pages_to_measure(
    portal_port: int, totp_secret: str | None, referral_id: int, reference: str
) -> list[Page]:
    """Sign the partner and the staff member in, and the pages each will load."""
    partner, staff = Browser(portal_port), Browser(portal_port)
    sign_in(partner, PARTNER_EMAIL, None)
    sign_in(staff, STAFF_EMAIL, totp_secret)
    detail = f"/referrals/{reference}"
    # What an open page would have: the timeline once, then its ETag on every poll. Each
    # page is asked once first so the cookies are the ones a browser would then hold.
    etag = partner.request("GET", f"{detail}/timeline").headers.get("ETag", "")
    for browser, path in ((partner, detail), (partner, "/referrals/"), (staff, "/queue")):
        browser.request("GET", path)
    staff.request("GET", detail)
    partner.request("GET", "/bench/floor")
    as_partner = {"Cookie": partner.cookie_header()}
    as_staff = {"Cookie": staff.cookie_header()}
    one, fifty, hello = "bare one row", "bare 50 rows", "bare hello"
    floor = "portal floor"
    return [
        Page("partner referral page", "portal", detail, 200, as_partner, one, 0.5, floor),
        Page("partner list", "portal", "/referrals/", 200, as_partner, fifty, 0.5, floor),
        Page("staff queue", "portal", "/queue", 200, as_staff, fifty, 0.5, floor),
        Page("staff referral page", "portal", detail, 200, as_staff, one, 0.5, floor),
        Page(
            "timeline 304",
            "portal",
            f"{detail}/timeline",
            304,
            {**as_partner, "If-None-Match": etag},
            hello,
            0.8,
        ),
        # Signed in, audited, the layout around one line: what every portal page does.
        Page(floor, "portal", "/bench/floor", 200, as_partner, one),
        Page(hello, "bare", "/hello"),
        Page(one, "bare", f"/one/{referral_id}"),
        Page(fifty, "bare", "/fifty"),
    ]


def run_rounds(args, load, pages: list[Page], ports: dict, masters: dict) -> Measured:
    """Every URL in turn, round after round, each checked again before each round."""
    measured = Measured(
        rates={page.name: [] for page in pages},
        cpu={page.name: [] for page in pages},
        problems=[],
        socket_errors=Counter(),
    )
    wrong: Counter = Counter()
    for round_number in range(1, args.rounds + 1):
        if round_number > 1:
            measured.problems += check_pages(pages, ports, f"before round {round_number}")[0]
        for page in pages:
            before = server_cpu_seconds(masters[page.server])
            result = load(
                ports[page.server], page, args.seconds, args.load_threads, args.connections
            )
            after = server_cpu_seconds(masters[page.server])
            measured.rates[page.name].append(result.requests_per_second)
            if before is not None and after is not None and result.requests:
                measured.cpu[page.name].append((after - before) * 1000 / result.requests)
            wrong[page.name] += result.wrong
            measured.socket_errors[page.name] += result.socket_errors
            print(
                f"  round {round_number}/{args.rounds}  {page.name:<24} "
                f"{result.requests_per_second:>8.1f} req/s",
                flush=True,
            )
    measured.problems += check_pages(pages, ports, "after the runs")[0]
    measured.problems += [
        f"{name}: {count} answers under load were not the expected kind"
        for name, count in wrong.items()
        if count
    ]
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="each run (default 10)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", type=float, default=1, help="seconds per URL, unmeasured")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_PAGES_DATABASE_URL"),
        help="a PostgreSQL database to use (it is emptied); default a scratch SQLite file",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both apps")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker, both apps")
    parser.add_argument("--load-threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--pid-file", type=Path, help="where the servers' pids are kept")
    args = parser.parse_args(argv)

    processes = Processes(args.pid_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pages-") as scratch:
            return measure(args, processes, Path(scratch))
    finally:
        processes.stop_all()


def measure(args, processes: Processes, scratch: Path) -> int:
    url = normalise_database_url(args.database_url or f"sqlite:///{scratch / 'portal.db'}")
    dialect = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    env = {
        **os.environ,
        # Development: cookies over plain http, mail kept in the outbox. Production's
        # defaults stay as they are.
        "PORTAL_ENV": "development",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": url,
        "GUNICORN_WORKERS": str(args.workers),
        "GUNICORN_THREADS": str(args.threads),
    }
    print(f"Loading the demo desk into a fresh {dialect} database ...", flush=True)
    summary = prepare_database(url, env)
    totp_secret, referral_id, reference, events = read_demo(url)
    ports, masters = start_servers(env, processes, scratch)
    pages = pages_to_measure(ports["portal"], totp_secret, referral_id, reference)
    print(
        f"Demo desk: {summary}. Partner {PARTNER_EMAIL}, staff {STAFF_EMAIL}; "
        f"referral {reference} ({events} partner-visible events)."
    )
    problems, answers = check_pages(pages, ports, "before the runs")
    print("Answers: " + "; ".join(answers) + ".")
    if problems:
        return report_problems(problems, scratch)

    wrk = args.tool == "wrk" or (args.tool == "auto" and shutil.which("wrk"))
    load = run_wrk if wrk else run_python_load
    shape = f"-t{args.load_threads} -c{args.connections} -d{args.seconds:g}s"
    missing = " (wrk missing)" if args.tool == "auto" else ""
    label = f"wrk {shape}" if wrk else f"Python load tool{missing}, {shape}"
    print(f"Load: {label}; warm-up {args.warm_up:g} s per URL, then {args.rounds} rounds.")
    if args.warm_up > 0:
        for page in pages:
            load(ports[page.server], page, args.warm_up, args.load_threads, args.connections)
    measured = run_rounds(args, load, pages, ports, masters)

    cpu = {name: statistics.median(values) for name, values in measured.cpu.items() if values}
    print(
        f"\nPages against the bare framework ({dialect}; {label}; medians of {args.rounds} "
        f"interleaved rounds; gunicorn.conf.py, {args.workers} workers x {args.threads} "
        f"threads, both apps; {os.cpu_count()} cores)\n"
    )
    print(format_table(compare(pages, measured.rates, cpu)))
    if any(measured.socket_errors.values()):
        print(
            "\nSocket errors (connections gunicorn closed, e.g. a worker replaced after "
            "GUNICORN_MAX_REQUESTS): "
            + ", ".join(f"{n} {count}" for n, count in measured.socket_errors.items() if count)
        )
    return report_problems(measured.problems, scratch) if measured.problems else 0


def report_problems(problems: list[str], scratch: Path) -> int:
    print("\nAnswered wrongly:\n  " + "\n  ".join(problems), file=sys.stderr)
    print(f"\nThe portal's error log ends:\n{tail(scratch / 'portal.err')}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
