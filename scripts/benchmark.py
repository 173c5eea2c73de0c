"""The million-referral benchmark: generate a desk with years of history, then time
the pages and jobs that must stay fast. Not part of the test suite.

    .venv/bin/python scripts/benchmark.py --database sqlite
    .venv/bin/python scripts/benchmark.py --database postgresql --url postgresql://...

Targets at 1,000,000 referrals: scorecard of a closed week or month, warm, <= 0.3 s on
PostgreSQL and <= 0.5 s on SQLite (the open week <= 2 s); each page <= 100 ms at the
95th percentile for one user; SLA sweep with 1 % of open clocks due <= 1 s; web worker
memory <= 200 MB.
"""

from __future__ import annotations

import argparse
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyotp  # noqa: E402
from sqlalchemy import insert, text, update  # noqa: E402

from portal import create_app  # noqa: E402
from portal.accounts.passwords import hash_password  # noqa: E402
from portal.commands import upgrade_database  # noqa: E402
from portal.config import TestConfig  # noqa: E402
from portal.database import empty_postgresql  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Base,
    OutreachAttempt,
    Partner,
    Referral,
    ReferralEvent,
    Role,
    ServiceLine,
    SlaClock,
    SlaStage,
    Status,
    User,
)
from portal.referrals.references import ALPHABET  # noqa: E402

PASSWORD = "benchmark-password"  # noqa: S105 - a throwaway benchmark database
CHUNK = 5_000
NOW = datetime.now(UTC).replace(microsecond=0)
SPAN = timedelta(days=730)


class Progress:
    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.start, self.done = total, label, time.monotonic(), 0

    def advance(self, count: int) -> None:
        self.done += count
        fraction = self.done / self.total
        elapsed = time.monotonic() - self.start
        eta = elapsed / fraction - elapsed if fraction else 0
        bar = "#" * int(fraction * 30)
        sys.stderr.write(
            f"\r{self.label} [{bar:<30}] {self.done:,}/{self.total:,} "
            f"{elapsed:5.0f}s elapsed, {eta:4.0f}s left"
        )
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def reference(index: int) -> str:
    chars = []
    for _ in range(8):
        index, digit = divmod(index, 32)
        chars.append(ALPHABET[digit])
    # A fixed scramble keeps references unique but not sequential-looking.
    chars = chars[3:] + chars[:3]
    return f"R-{''.join(chars[:4])}-{''.join(chars[4:])}"


def seed_static(partners: int) -> dict:
    password = hash_password(PASSWORD)
    partner_rows = [
        {
            "name": f"Partner practice {n:03d}",
            "specialty": random.choice(["Primary care", "Cardiology", "Discharge planning"]),
            "referral_contact_name": f"Contact {n}",
            "referral_contact_email": f"referrals{n}@partner{n}.example",
            "active": True,
            "created_at": NOW - SPAN,
        }
        for n in range(partners)
    ]
    db.session.execute(insert(Partner), partner_rows)
    for name in ("Behavioral health", "Cardiac rehabilitation", "Diabetes", "Sleep medicine"):
        db.session.add(ServiceLine(name=name, eligibility_criteria="Adults"))
    partner_ids = [p.id for p in db.session.query(Partner.id).order_by(Partner.id)]
    users = [
        {
            "email": f"office@partner{n}.example",
            "full_name": f"Office {n}",
            "role": Role.PARTNER,
            "partner_id": partner_id,
            "password_hash": password,
            "enabled": True,
            "created_at": NOW - SPAN,
        }
        for n, partner_id in enumerate(partner_ids)
    ]
    for role in (Role.INTAKE, Role.CLINICAL, Role.PARTNER_SUCCESS, Role.ADMIN):
        users.append(
            {
                "email": f"{role.value}@bench.example",
                "full_name": role.label,
                "role": role,
                "partner_id": None,
                "password_hash": password,
                "enabled": True,
                "created_at": NOW - SPAN,
                # Staff sign in with a second factor (tests.conftest computes the codes).
                "totp_secret": pyotp.random_base32(),
                "totp_enabled_at": NOW - SPAN,
            }
        )
    db.session.execute(insert(User), users)
    db.session.commit()
    return {
        "partners": partner_ids,
        "lines": [s.id for s in db.session.query(ServiceLine.id)],
        "users": {u.email: u.id for u in db.session.query(User.email, User.id)},
    }


def generate(total: int, ids: dict) -> None:
    """Referrals with realistic histories: most settled long ago, recent ones open."""
    intake = ids["users"]["intake@bench.example"]
    clinical = ids["users"]["clinical@bench.example"]
    office = {
        pid: ids["users"][f"office@partner{n}.example"] for n, pid in enumerate(ids["partners"])
    }
    # A few partners send most referrals, as in real programmes.
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(ids["partners"]))]
    progress = Progress(total, "referrals")
    next_id = 1
    for chunk_start in range(0, total, CHUNK):
        referrals, events, clocks, attempts = [], [], [], []
        for _ in range(min(CHUNK, total - chunk_start)):
            rid = next_id
            next_id += 1
            partner = random.choices(ids["partners"], weights)[0]
            submitted = NOW - SPAN * (random.random() ** 1.3)
            urgent = random.random() < 0.12
            row = {
                "id": rid,
                "reference": reference(rid * 7919 % (32**8)),
                "partner_id": partner,
                "service_line_id": random.choice(ids["lines"]),
                "urgency": "urgent" if urgent else "routine",
                "referring_provider_name": "Dr. Bench",
                "referring_provider_npi": "1234567893",
                "patient_first_name": "Bench",
                "patient_last_name": f"Patient{rid}",
                "patient_date_of_birth": date(1950 + rid % 50, 1 + rid % 12, 1 + rid % 28),
                "patient_phone": "+12025550111",
                "patient_email": None,
                "preferred_contact": "phone",
                "reason": "Benchmark referral",
                "clinical_context": "",
                "source_channel": "portal",
                "submitted_by_id": office[partner],
                "submission_token": secrets.token_hex(8),
                "submitted_at": submitted,
                "version": 1,
            }
            history = _history(row, submitted, urgent, intake, clinical)
            referrals.append(row)
            for event in history["events"]:
                events.append({"referral_id": rid, **event})
            for clock in history["clocks"]:
                clocks.append({"referral_id": rid, **clock})
            for attempt in history["attempts"]:
                attempts.append({"referral_id": rid, "actor_id": intake, **attempt})
        db.session.execute(insert(Referral.__table__), referrals)
        db.session.execute(insert(ReferralEvent.__table__), events)
        db.session.execute(insert(SlaClock.__table__), clocks)
        if attempts:
            db.session.execute(insert(OutreachAttempt.__table__), attempts)
        db.session.commit()
        progress.advance(len(referrals))


def _history(row, submitted, urgent, intake, clinical) -> dict:
    """Walk one referral forward until it settles or reaches now."""
    speed = 0.3 if urgent else 1.0
    events, clocks, attempts = [], [], []
    t = submitted
    status = Status.SUBMITTED

    def event(kind, to_status, actor, visible=True, summary="Benchmark step"):
        nonlocal status
        events.append(
            {
                "at": t,
                "actor_id": actor,
                "kind": kind,
                "from_status": status.value if kind != "submitted" else None,
                "to_status": to_status.value if to_status else None,
                "partner_visible": visible,
                "summary": summary,
                "staff_note": "",
            }
        )
        if to_status:
            status = to_status

    def clock(stage, started, stopped, target):
        due = started + timedelta(minutes=target * 3)  # business minutes, roughly
        breached = due if stopped is None and due <= NOW or stopped and stopped > due else None
        clocks.append(
            {
                "stage": stage.value,
                "owner_role": stage.owner.value,
                "target_minutes": float(target),
                "started_at": started,
                "used_minutes": 0.0,
                "resumed_at": started if stopped is None else None,
                "due_at": due if stopped is None else None,
                "at_risk_at": started + timedelta(minutes=target * 2.25),
                # The sweep tags a clock at risk when it gets there (breached ones too).
                "at_risk_tagged_at": started + timedelta(minutes=target * 2.25)
                if stopped is None and started + timedelta(minutes=target * 2.25) <= NOW
                else None,
                "breached_at": breached,
                "stopped_at": stopped,
                "breach_reason": random.choice(
                    [None, "Volume or staffing", "Waiting on clinical review"]
                )
                if breached and stopped
                else None,
            }
        )

    def step(hours_low, hours_high) -> bool:
        nonlocal t
        t = t + timedelta(hours=random.uniform(hours_low, hours_high) * speed)
        return t < NOW and random.random() > 0.004  # a few wait at every stage

    event("submitted", Status.SUBMITTED, row["submitted_by_id"], summary="Referral received")
    stage_started = t
    if random.random() < 0.15 and submitted < NOW - timedelta(days=3):
        # Incomplete at submission; the answer came before first touch.
        event("needs_info", Status.NEEDS_INFO, None, summary="More information needed")
        row["needs_info_at"] = t
        event("answer_info", Status.SUBMITTED, row["submitted_by_id"], summary="Answered")
    targets = {
        "first": 60 if urgent else 480,
        "triage": 240 if urgent else 960,
        "next": 480 if urgent else 1440,
    }
    if not step(0.2, 20):
        clock(SlaStage.FIRST_TOUCH, stage_started, None, targets["first"])
        return _finish(row, status, events, clocks, attempts)
    row["first_touch_at"] = t
    clock(SlaStage.FIRST_TOUCH, stage_started, t, targets["first"])
    event("first_touch", Status.IN_REVIEW, intake, summary="Intake has picked up the referral")
    stage_started = t
    if not step(1, 40):
        clock(SlaStage.TRIAGE, stage_started, None, targets["triage"])
        return _finish(row, status, events, clocks, attempts)
    row["triaged_at"] = t
    clock(SlaStage.TRIAGE, stage_started, t, targets["triage"])
    roll = random.random()
    if roll < 0.12:
        event("decline", Status.DECLINED, clinical, summary="Declined: not eligible")
        row["outcome_at"] = t
        return _finish(row, status, events, clocks, attempts)
    if roll < 0.19:
        event("redirect", Status.REDIRECTED, clinical, summary="Redirected")
        row["outcome_at"] = t
        return _finish(row, status, events, clocks, attempts)
    event("accept", Status.ACCEPTED, clinical, summary="Accepted")
    stage_started = t
    for _attempt in range(3):
        if not step(2, 30):
            clock(SlaStage.NEXT_STEP, stage_started, None, targets["next"])
            return _finish(row, status, events, clocks, attempts)
        reached = random.random() < 0.7
        attempts.append(
            {
                "at": t,
                "channel": "phone",
                "result": "reached" if reached else "no_answer",
                "note": "",
            }
        )
        event(
            "log_outreach",
            None,
            intake,
            visible=reached,
            summary="Patient reached" if reached else "Attempt",
        )
        if reached:
            row["patient_reached_at"] = t
            break
    else:
        event("mark_unreachable", Status.UNREACHABLE, intake, summary="Closed: unreachable")
        row["outcome_at"] = t
        clock(SlaStage.NEXT_STEP, stage_started, t, targets["next"])
        return _finish(row, status, events, clocks, attempts)
    if not step(0.1, 2):
        clock(SlaStage.NEXT_STEP, stage_started, None, targets["next"])
        return _finish(row, status, events, clocks, attempts)
    clock(SlaStage.NEXT_STEP, stage_started, t, targets["next"])
    appointment = t + timedelta(days=random.uniform(2, 14))
    row.update(scheduled_at=t, appointment_at=appointment, appointment_mode="video")
    event("schedule", Status.SCHEDULED, intake, summary="First visit scheduled")
    if appointment + timedelta(hours=3) >= NOW:
        clock(SlaStage.VISIT, t, None, 480)
        return _finish(row, status, events, clocks, attempts)
    t = appointment + timedelta(hours=random.uniform(1, 6))
    clock(SlaStage.VISIT, row["scheduled_at"], t, 480)
    if random.random() < 0.85:
        event("record_completed", Status.COMPLETED, intake, summary="Started care")
        row["outcome_at"] = t
        return _finish(row, status, events, clocks, attempts)
    # A no-show is rebooked or, when the patient cannot be reached again, closed.
    event("record_no_show", Status.NO_SHOW, intake, summary="No-show")
    stage_started = t
    if not step(2, 72):
        clock(SlaStage.NEXT_STEP, stage_started, None, targets["next"])
        return _finish(row, status, events, clocks, attempts)
    clock(SlaStage.NEXT_STEP, stage_started, t, targets["next"])
    if random.random() < 0.4:
        event("mark_unreachable", Status.UNREACHABLE, intake, summary="Closed: unreachable")
        row["outcome_at"] = t
        return _finish(row, status, events, clocks, attempts)
    row.update(appointment_at=t + timedelta(days=random.uniform(2, 14)))
    event("schedule", Status.SCHEDULED, intake, summary="Visit rebooked")
    if row["appointment_at"] + timedelta(hours=3) >= NOW:
        clock(SlaStage.VISIT, t, None, 480)
        return _finish(row, status, events, clocks, attempts)
    visit_booked, t = t, row["appointment_at"] + timedelta(hours=random.uniform(1, 6))
    clock(SlaStage.VISIT, visit_booked, t, 480)
    event("record_completed", Status.COMPLETED, intake, summary="Started care")
    row["outcome_at"] = t
    return _finish(row, status, events, clocks, attempts)


def _finish(row, status, events, clocks, attempts) -> dict:
    row["status"] = status.value
    row["updated_at"] = events[-1]["at"]
    for key in (
        "first_touch_at",
        "triaged_at",
        "needs_info_at",
        "patient_reached_at",
        "scheduled_at",
        "outcome_at",
        "appointment_at",
        "appointment_mode",
    ):
        row.setdefault(key, None)
    return {"events": events, "clocks": clocks, "attempts": attempts}


def timed(label: str, action, repeat: int = 1) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95 + 0.5) - 1)]


def measure(app, results: dict) -> None:
    from portal.scorecard.periods import last_complete_week, month_of, today, week_of
    from portal.scorecard.report import scorecard_report
    from portal.sla.tasks import check_coverage, sweep

    def client_for(email):
        from tests.conftest import PortalClient

        app.test_client_class = PortalClient
        client = app.test_client()
        client.sign_in(email, PASSWORD)
        return client

    with app.app_context():  # a database generated before staff had a second factor
        db.session.execute(
            update(User)
            .where(User.partner_id.is_(None), User.totp_secret.is_(None))
            .values(totp_secret=pyotp.random_base32(), totp_enabled_at=NOW - SPAN)
        )
        db.session.commit()
    intake = client_for("intake@bench.example")
    success = client_for("partner_success@bench.example")
    big_partner = client_for("office@partner0.example")
    with app.app_context():
        # The office has opened most of its recent referrals (every 20th is news): the
        # unread badge's hardest case, walking many seen referrals to find the news.
        db.session.execute(
            text(
                "INSERT INTO referral_view (user_id, referral_id, seen_at) "
                "SELECT u.id, r.id, :now FROM referral r JOIN user_account u "
                "ON u.email = 'office@partner0.example' AND u.partner_id = r.partner_id "
                "WHERE r.updated_at > :since AND r.id % 20 <> 0 AND NOT EXISTS ("
                "SELECT 1 FROM referral_view v WHERE v.user_id = u.id AND v.referral_id = r.id)"
            ),
            {"now": NOW, "since": NOW - timedelta(days=90)},
        )
        db.session.commit()
        busy = db.session.execute(
            text(
                "SELECT reference FROM referral WHERE partner_id = "
                "(SELECT min(id) FROM partner) ORDER BY submitted_at DESC LIMIT 1"
            )
        ).scalar()
        open_count = db.session.execute(
            text("SELECT count(*) FROM sla_clock WHERE stopped_at IS NULL")
        ).scalar()

    def page(client, path, expect=200):
        def go():
            response = client.get(path)
            assert response.status_code == expect, (path, response.status_code)

        return go

    with app.app_context():
        db.session.execute(text("DELETE FROM scorecard_snapshot"))  # a --reuse run starts cold
        db.session.commit()
        week = last_complete_week()
        month = month_of(week.first_day - timedelta(days=31))
        settled = week_of(week.first_day - timedelta(weeks=6))

        def report(period):
            return lambda: scorecard_report(period, None, staff=True)

        # The first call computes every figure (and stores the closed periods'); later
        # calls read what was stored. Figures, tables and 12-week trends each time.
        results["closed week scorecard, first call (computes, stores)"] = timed(
            "scorecard", report(week)
        )
        results["closed week scorecard, warm (stored)"] = timed("scorecard", report(week), 5)
        timed("scorecard", report(month))
        results["closed month scorecard, warm (stored)"] = timed("scorecard", report(month), 5)
        timed("scorecard", report(settled))
        results["settled week (30 days passed) scorecard, warm"] = timed(
            "scorecard", report(settled), 5
        )
        results["open week scorecard (live)"] = timed("scorecard", report(week_of(today())), 3)
    pages = {
        "staff queue page": page(intake, "/queue"),
        "staff queue, breached filter": page(intake, "/queue?sla=breached"),
        "partner referral list": page(big_partner, "/referrals/"),
        "partner referral page": page(big_partner, f"/referrals/{busy}"),
        "staff referral page": page(intake, f"/referrals/{busy}"),
        "timeline refresh (changed)": page(big_partner, f"/referrals/{busy}/timeline"),
        "partner dashboard": page(big_partner, "/dashboard"),
    }
    for label, action in pages.items():
        action()  # warm up
        results[label] = timed(label, action, repeat=40)
    etag = big_partner.get(f"/referrals/{busy}/timeline").headers["ETag"]
    results["timeline refresh (nothing new, 304)"] = timed(
        "304",
        lambda: big_partner.get(f"/referrals/{busy}/timeline", headers={"If-None-Match": etag}),
        repeat=40,
    )
    results["scorecard page (HTTP)"] = timed(
        "scorecard page", page(success, "/scorecard"), repeat=3
    )

    with app.app_context():
        while sum(vars(sweep()).values()):  # catch up first: the steady state is the test
            pass
        due = max(1, open_count // 100)
        db.session.execute(
            text(
                "UPDATE sla_clock SET due_at = :past, breached_at = NULL, at_risk_tagged_at = NULL "
                "WHERE id IN (SELECT id FROM sla_clock WHERE stopped_at IS NULL "
                "AND resumed_at IS NOT NULL ORDER BY id LIMIT :n)"
            ),
            {"past": NOW - timedelta(minutes=5), "n": due},
        )
        db.session.commit()
        results[f"SLA sweep ({due:,} of {open_count:,} open clocks due)"] = timed("sweep", sweep)
        results["no-referral-goes-dark check (every open referral)"] = timed(
            "coverage", check_coverage
        )
    results["peak memory of the web process (MB)"] = [
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", help="PostgreSQL URL (the database is emptied)")
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--partners", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure an already generated database again (after migrating it)",
    )
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="generate the database and stop (measure it later with --reuse)",
    )
    args = parser.parse_args()
    random.seed(args.seed)

    if args.database == "sqlite" and not args.url:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='portal-bench-')}/bench.db"
    else:
        url = args.url
    app = create_app(TestConfig, DATABASE_URL=url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        if args.reuse:
            upgrade_database()
        elif args.database == "postgresql":
            empty_postgresql(url)
        if not args.reuse:
            upgrade_database()
            started = time.monotonic()
            ids = seed_static(args.partners)
            generate(args.referrals, ids)
            print(f"generated in {time.monotonic() - started:.0f} s into {url}")
        if args.database == "postgresql":
            # What autovacuum does on a live database: statistics, and the visibility map
            # that lets covering indexes answer without reading the table.
            tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"VACUUM (ANALYZE) {tables}"))
            db.session.execute(
                text("SELECT setval('referral_id_seq', (SELECT max(id) FROM referral))")
            )
            db.session.commit()
        else:
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        counts = {
            table.name: db.session.execute(text(f"SELECT count(*) FROM {table.name}")).scalar()  # noqa: S608
            for table in Base.metadata.sorted_tables
            if table.name in {"referral", "referral_event", "sla_clock", "outreach_attempt"}
        }
        print(f"rows: {counts}")
    if args.generate_only:
        return
    results: dict[str, list[float]] = {}
    measure(app, results)
    print(f"\n{args.database}, {args.referrals:,} referrals, {args.partners} partners")
    for label, values in results.items():
        if "MB" in label:
            print(f"  {label:<55} {values[0]:8.0f}")
        elif len(values) == 1:
            print(f"  {label:<55} {values[0] * 1000:8.0f} ms")
        else:
            print(
                f"  {label:<55} p95 {p95(values) * 1000:6.0f} ms"
                f"  median {statistics.median(values) * 1000:6.0f} ms"
            )


if __name__ == "__main__":
    main()
