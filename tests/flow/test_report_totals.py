"""`report_totals`, kept by triggers on stream_report (SQLite and PostgreSQL): after any mix of
writes (ORM or plain SQL, every status, days in and out of the scoring phases) the stored sums
are the sums of the reports; a changed campaign file rebuilds them, and until then the board
does not use them; two writers of one streamer's reports at once lose neither."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, text, update
from sqlmodel import Session

from config.campaign import Campaign
from storage import report_totals
from storage.db import Database
from storage.leaderboard import (
    compute_leaderboard,
    report_sums,
    scoring_basis,
    sync_scoring_basis,
)
from storage.models import Registration, ReportTotals, StreamReport
from tests.conftest import shanghai
from tests.flow.test_ranking import report, streamer

LITONG = "litong-2024"
FIRST_DAY = date(2024, 9, 8)  # 利通's scoring phases start on 09-12: the first days never count
STATUSES = ("unverified", "confirmed", "superseded", "rejected")
EXAMPLES = itertools.count()  # new streamers for each example
Work = Callable[[Session], Any]


def sums(session: Session, campaign: Campaign, *, stored: bool) -> set[tuple[Any, ...]]:
    query = report_sums(campaign, stored=stored).subquery()
    return {tuple(row) for row in session.execute(select(query))}


def assert_totals_are_the_sums(db: Database, campaign: Campaign) -> None:
    def check(session: Session) -> None:
        assert report_totals.is_current(session, campaign.id, scoring_basis(campaign))
        assert sums(session, campaign, stored=True) == sums(session, campaign, stored=False)

    db.run_sync(check)


def second_waits_for_first(db: Database, first: Work, second: Work) -> None:
    """Run `first` in a transaction held open after it ran, then `second` in another, which
    must wait for the first to commit; then let both finish."""
    ran, go_on = threading.Event(), threading.Event()

    def holding(session: Session) -> None:
        first(session)
        ran.set()
        go_on.wait(10)

    holder = threading.Thread(target=db.run_sync, args=(holding,))
    holder.start()
    assert ran.wait(10)
    waiter = threading.Thread(target=db.run_sync, args=(second,))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # waiting for the first
    go_on.set()
    holder.join(10)
    waiter.join(10)
    assert not holder.is_alive() and not waiter.is_alive()


@pytest.fixture
def litong(db: Database, all_campaigns: dict[str, Campaign]) -> Campaign:
    campaign = all_campaigns[LITONG]
    assert db.run_sync(lambda s: sync_scoring_basis(s, campaign))
    return campaign


write = st.one_of(
    st.tuples(
        st.just("add"),
        st.integers(0, 3),  # which streamer
        st.integers(0, 40),  # day after FIRST_DAY
        st.sampled_from(STATUSES),
        st.decimals(0, 99_999, places=2),
    ),
    st.tuples(st.just("status"), st.integers(0, 30), st.sampled_from(STATUSES)),
    st.tuples(st.just("gmv"), st.integers(0, 30), st.decimals(0, 99_999, places=2)),
    st.tuples(st.just("move"), st.integers(0, 30), st.integers(0, 40)),
    st.tuples(st.just("screenshot"), st.integers(0, 30)),
    st.tuples(st.just("delete"), st.integers(0, 30)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=st.lists(write, min_size=1, max_size=12))
def test_totals_follow_every_write(db: Database, litong: Campaign, writes: list[Any]) -> None:
    """ORM adds and plain UPDATE/DELETE statements, each in a transaction of its own."""
    example = next(EXAMPLES)
    regs = db.run_sync(
        lambda s: [streamer(s, LITONG, f"u-{example}-{n}", f"主播{n}") for n in range(4)]
    )

    def apply(step: Any) -> Any:
        def run(session: Session) -> None:
            ids = session.scalars(
                select(StreamReport.id).where(
                    StreamReport.registration_id.in_([r.id for r in regs])  # type: ignore[union-attr]
                )
            ).all()
            kind, *args = step
            if kind == "add":
                who, day, status, gmv = args
                when = FIRST_DAY + timedelta(days=day)
                report(session, regs[who], when, status=status, gmv=gmv, refunds=gmv / 10,
                       minutes=30 + day, viewers=day * 7, peak_viewers=day, likes=3)  # fmt: skip
                return
            if not ids:
                return
            target = StreamReport.id == ids[args[0] % len(ids)]
            changes: dict[str, Any] = {
                "status": lambda: {"status": args[1]},
                "gmv": lambda: {"gmv": args[1]},
                "move": lambda: {"stream_date": FIRST_DAY + timedelta(days=args[1])},
                "screenshot": lambda: {"screenshot": "media-1"},
            }.get(kind, lambda: {})()
            if kind == "delete":
                session.execute(delete(StreamReport).where(target))
            else:
                session.execute(update(StreamReport).where(target).values(**changes))

        return run

    for step in writes:
        db.run_sync(apply(step))
    assert_totals_are_the_sums(db, litong)


def test_a_changed_file_rebuilds_the_totals_and_the_board_waits_for_it(
    db: Database, litong: Campaign
) -> None:
    def build(session: Session) -> None:
        wang = streamer(session, LITONG, "u-wang", "王小文")
        report(session, wang, date(2024, 9, 13), gmv=6000, minutes=60)
        report(session, wang, date(2024, 9, 14), gmv=4000, minutes=60, status="confirmed")
        report(session, wang, date(2024, 9, 9), gmv=900, minutes=60, status="confirmed")

    db.run_sync(build)
    now = shanghai(2024, 9, 20, 21, 0)

    def net_gmv(campaign: Campaign) -> Any:
        def read(session: Session) -> float:
            entry = compute_leaderboard(session, campaign, now).groups[0].entries[0]
            return entry.metrics["net_gmv"]

        return read

    assert db.run_sync(net_gmv(litong), read_only=True) == 10_000
    # The file now counts confirmed figures only, from 09-08 on.
    phases = [
        p.model_copy(update={"start": shanghai(2024, 9, 8, 0, 0)}) if p.key == "meet" else p
        for p in litong.phases
    ]
    changed = litong.model_copy(
        update={
            "scoring": litong.scoring.model_copy(update={"count_unverified": False}),
            "phases": phases,
        }
    )
    assert scoring_basis(changed) != scoring_basis(litong)
    # Before the rebuild the stored totals are stale: the board sums the reports itself.
    assert db.run_sync(net_gmv(changed), read_only=True) == 4900
    assert db.run_sync(lambda s: sync_scoring_basis(s, changed))
    assert not db.run_sync(lambda s: sync_scoring_basis(s, changed))  # current: nothing to do
    assert db.run_sync(net_gmv(changed), read_only=True) == 4900
    assert_totals_are_the_sums(db, changed)
    stored = db.run_sync(lambda s: s.scalars(select(ReportTotals.gmv)).all())
    assert [Decimal(str(g)) for g in stored] == [Decimal("4900")]


def test_totals_are_built_for_reports_written_before_the_basis(
    db: Database, all_campaigns: dict[str, Campaign]
) -> None:
    """A database from before report_totals, or seeded in bulk: the first start-up builds them."""
    campaign = all_campaigns[LITONG]

    def build(session: Session) -> None:
        for n in range(3):
            reg = streamer(session, LITONG, f"u-{n}", f"主播{n}")
            report(session, reg, date(2024, 9, 13 + n), gmv=1000 * (n + 1), minutes=60)

    db.run_sync(build)
    assert db.run_sync(lambda s: s.scalars(select(ReportTotals)).all()) == []
    assert db.run_sync(lambda s: sync_scoring_basis(s, campaign))
    assert_totals_are_the_sums(db, campaign)
    assert len(db.run_sync(lambda s: sums(s, campaign, stored=True))) == 3


def test_two_writers_of_one_streamers_reports_lose_neither(db: Database, litong: Campaign) -> None:
    """The first holds its transaction open after its trigger ran; the second writes meanwhile
    (PostgreSQL: waits for the row lock on the registration; SQLite: for the write lock), then sums
    what the first committed."""
    reg_id = db.run_sync(lambda s: streamer(s, LITONG, "u-wang", "王小文").id)
    row = {
        "campaign_id": LITONG,
        "registration_id": reg_id,
        "status": "confirmed",
        "source": "self",
        "minutes": 60,
        "created_at": shanghai(2024, 9, 20, 22, 0),
        "updated_at": shanghai(2024, 9, 20, 22, 0),
    }

    def write(day: date, gmv: int) -> Work:
        return lambda s: s.execute(insert(StreamReport).values(stream_date=day, gmv=gmv, **row))

    second_waits_for_first(db, write(date(2024, 9, 13), 100), write(date(2024, 9, 14), 50))
    assert_totals_are_the_sums(db, litong)
    totals = db.run_sync(lambda s: s.get(ReportTotals, (LITONG, reg_id)))
    assert (float(totals.gmv), totals.streams, totals.days) == (150.0, 2, 2)


def test_a_streamer_without_counted_reports_has_no_totals(db: Database, litong: Campaign) -> None:
    def build(session: Session) -> int:
        reg = streamer(session, LITONG, "u-wang", "王小文")
        report(session, reg, date(2024, 9, 13), gmv=6000, minutes=60)
        return int(reg.id or 0)

    reg_id = db.run_sync(build)
    assert db.run_sync(lambda s: s.get(ReportTotals, (LITONG, reg_id))) is not None
    db.run_sync(lambda s: s.execute(update(StreamReport).values(status="rejected")))
    assert db.run_sync(lambda s: s.get(ReportTotals, (LITONG, reg_id))) is None
    db.run_sync(lambda s: s.execute(delete(StreamReport)))
    db.run_sync(lambda s: s.execute(delete(Registration).where(Registration.id == reg_id)))
    assert_totals_are_the_sums(db, litong)


def test_a_report_filed_under_another_campaign_leaves_the_streamers_totals(
    db: Database, litong: Campaign, all_campaigns: dict[str, Campaign]
) -> None:
    """Hand-written SQL may put a streamer's report under another campaign: each campaign's
    totals stay its own, and a start-up that installs the triggers again changes nothing."""
    demo = all_campaigns["demo"]
    assert db.run_sync(lambda s: sync_scoring_basis(s, demo))
    db.create_all()  # a second start-up: the triggers are made again

    def build(session: Session) -> None:
        wang = streamer(session, LITONG, "u-wang", "王小文")
        report(session, wang, date(2024, 9, 13), gmv=6000, minutes=60)
        day = min(demo.phases_of("competition"), key=lambda p: p.start).start.date()
        session.add(
            StreamReport(
                campaign_id=demo.id,
                registration_id=wang.id,
                stream_date=day,
                gmv=Decimal(100),
                status="confirmed",
                created_at=shanghai(2024, 9, 20, 22, 0),
                updated_at=shanghai(2024, 9, 20, 22, 0),
            )
        )

    db.run_sync(build)
    for campaign in (litong, demo):
        assert_totals_are_the_sums(db, campaign)
        assert len(db.run_sync(lambda s, c=campaign: sums(s, c, stored=True))) == 1


def test_truncating_the_reports_empties_the_totals(db: Database, litong: Campaign) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has no TRUNCATE")

    def build(session: Session) -> None:
        report(session, streamer(session, LITONG, "u-wang", "王小文"), date(2024, 9, 13), gmv=1)

    db.run_sync(build)
    db.run_sync(lambda s: s.execute(text("TRUNCATE stream_report")))
    assert db.run_sync(lambda s: s.scalars(select(ReportTotals)).all()) == []


def test_a_report_written_during_a_rebuild_is_summed_by_the_new_basis(
    db: Database, litong: Campaign
) -> None:
    """The rebuild holds its transaction open; a report written meanwhile waits for it
    (PostgreSQL: the table lock; SQLite: the write lock), then counts by the new basis."""
    reg_id = db.run_sync(lambda s: streamer(s, LITONG, "u-wang", "王小文").id)
    changed = litong.model_copy(
        update={"scoring": litong.scoring.model_copy(update={"count_unverified": False})}
    )

    def write(session: Session) -> None:
        reg = session.get(Registration, reg_id)
        report(session, reg, date(2024, 9, 13), gmv=500, minutes=60)  # unverified: no longer counts
        report(session, reg, date(2024, 9, 14), gmv=70, minutes=60, status="confirmed")

    second_waits_for_first(db, lambda s: sync_scoring_basis(s, changed), write)
    assert_totals_are_the_sums(db, changed)
    totals = db.run_sync(lambda s: s.get(ReportTotals, (LITONG, reg_id)))
    assert (float(totals.gmv), totals.streams) == (70.0, 1)
