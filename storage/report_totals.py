"""Per-streamer totals of the counted stream reports (`report_totals`), kept by the database.

A board over a million reports spends most of its time summing them. Triggers on stream_report
keep each streamer's sums up to date in the same transaction as any write to its reports (the
report flow, imports, reviews, an operator's hand-written SQL alike), so a board reads one row
per streamer. What counts comes from the campaign file: `scoring_basis` and `scoring_day` hold
it in the database for the triggers, and `rebuild` rewrites them, and every total of the
campaign, when the file changed. The board uses the totals only while the stored basis is the
file's (`is_current`); otherwise it sums the reports itself, so a stale basis costs time, never
a wrong figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import Connection, Exists, delete, exists, insert, select, text
from sqlmodel import Session, col

from storage.models import Registration, ScoringBasis, ScoringDay

_COLUMNS = "registration_id, campaign_id, gmv, refunds, orders, streams, days, minutes, viewers, peak, likes"
# The sums of `storage.leaderboard`'s direct query, over the reports the basis counts. The basis
# row comes first and the reports in the covering index's order (CROSS JOIN fixes SQLite's
# join order): SQLite then sums the floats in the order the direct query does.
_SUMS = f"""INSERT INTO report_totals ({_COLUMNS})
SELECT r.registration_id, r.campaign_id, sum(r.gmv), sum(r.refunds), sum(r.orders), count(*),
       count(DISTINCT r.stream_date), sum(r.minutes), sum(r.viewers), max(r.peak_viewers),
       sum(r.likes)
FROM scoring_basis AS b CROSS JOIN stream_report AS r CROSS JOIN scoring_day AS d
WHERE b.campaign_id IN ({{campaigns}}) AND r.campaign_id = b.campaign_id AND {{registrations}}
  AND (r.status = 'confirmed' OR (r.status = 'unverified' AND b.count_unverified))
  AND d.campaign_id = r.campaign_id AND d.day = r.stream_date
GROUP BY r.registration_id, r.campaign_id"""
# What a write to these columns can change; other updates (a screenshot) leave the totals be.
_WATCHED = (
    "campaign_id, registration_id, stream_date, status, gmv, refunds, orders, minutes, "
    "viewers, peak_viewers, likes"
)


class Basis(NamedTuple):
    """What counts: unverified reports or not, and the scoring days."""

    count_unverified: bool
    days: tuple[date, ...]

    @property
    def fingerprint(self) -> str:
        return f"unverified={int(self.count_unverified)};" + ",".join(map(str, self.days))


def _refresh(registrations: str, campaigns: str) -> str:
    """The statements that recompute the totals of the given streamers (SQL expressions)."""
    sums = _SUMS.format(
        campaigns=campaigns, registrations=f"r.registration_id IN ({registrations})"
    )
    gone = f"registration_id IN ({registrations}) AND campaign_id IN ({campaigns})"
    return f"DELETE FROM report_totals WHERE {gone};\n{sums};"


# Dropped and made again at every start (in the start-up's transaction), so a changed body
# reaches databases made before it.
_SQLITE_TRIGGERS = [
    statement
    for event, rows, campaigns in (
        ("INSERT", "NEW.registration_id", "NEW.campaign_id"),
        (
            f"UPDATE OF {_WATCHED}",
            "OLD.registration_id, NEW.registration_id",
            "OLD.campaign_id, NEW.campaign_id",
        ),
        ("DELETE", "OLD.registration_id", "OLD.campaign_id"),
    )
    for name in [f"report_totals_{event.split()[0].lower()}"]
    for statement in (
        f"DROP TRIGGER IF EXISTS {name}",
        f"""CREATE TRIGGER {name} AFTER {event} ON stream_report FOR EACH ROW BEGIN
{_refresh(rows, campaigns)}
END""",
    )
]
_POSTGRES_TRIGGER = [
    f"""CREATE OR REPLACE FUNCTION report_totals_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_id integer;
    new_id integer;
    old_campaign varchar;
    new_campaign varchar;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_id := OLD.registration_id;
        old_campaign := OLD.campaign_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_id := NEW.registration_id;
        new_campaign := NEW.campaign_id;
    END IF;
    -- Two writers of one streamer's reports: the second waits, then sums what the first wrote.
    -- A row lock, not an advisory one: an import of 50,000 streamers would take 50,000 entries
    -- of the server's lock table; this one also leaves foreign-key checks free.
    PERFORM 1 FROM registration WHERE id IN (old_id, new_id) ORDER BY id FOR NO KEY UPDATE;
    {_refresh("old_id, new_id", "old_campaign, new_campaign")}
    RETURN NULL;
END $$""",
    f"""CREATE OR REPLACE TRIGGER report_totals
AFTER INSERT OR DELETE OR UPDATE OF {_WATCHED} ON stream_report
FOR EACH ROW EXECUTE FUNCTION report_totals_refresh()""",
    # TRUNCATE fires no row trigger.
    """CREATE OR REPLACE FUNCTION report_totals_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_totals;
    RETURN NULL;
END $$""",
    """CREATE OR REPLACE TRIGGER report_totals_truncate AFTER TRUNCATE ON stream_report
FOR EACH STATEMENT EXECUTE FUNCTION report_totals_clear()""",
]


def install(connection: Connection) -> None:
    """The triggers (idempotent; the tables come from the models)."""
    statements = _SQLITE_TRIGGERS if connection.dialect.name == "sqlite" else _POSTGRES_TRIGGER
    for statement in statements:
        connection.exec_driver_sql(statement)


def current(campaign_id: str, basis: Basis) -> Exists:
    """True in SQL while the stored basis is this one: part of the board's own statement, so it
    and the totals are read from one snapshot."""
    return exists().where(
        ScoringBasis.campaign_id == campaign_id, ScoringBasis.fingerprint == basis.fingerprint
    )


def is_current(session: Session, campaign_id: str, basis: Basis) -> bool:
    return bool(session.scalar(select(current(campaign_id, basis))))


def lock_streamers(session: Session, registration_ids: Iterable[int]) -> None:
    """Take, in id order, the row locks the triggers take one by one (PostgreSQL): a write
    that touches many streamers' reports (an import) then never deadlocks with another."""
    ids = sorted(set(registration_ids))
    if ids and session.get_bind().dialect.name != "sqlite":
        session.execute(
            select(Registration.id)
            .where(col(Registration.id).in_(ids))
            .order_by(Registration.id)
            .with_for_update(key_share=True)
        )


def rebuild(session: Session, campaign_id: str, basis: Basis) -> bool:
    """Store the basis and recompute every total of the campaign, unless the stored basis is
    already this one. True when it rebuilt."""
    if is_current(session, campaign_id, basis):
        return False
    if session.get_bind().dialect.name != "sqlite":
        # Writers' triggers wait until the new basis is committed, then sum by it; a second
        # instance starting at the same time waits here, then finds the basis current.
        session.execute(text("LOCK TABLE report_totals IN EXCLUSIVE MODE"))
        if is_current(session, campaign_id, basis):
            return False
    params: dict[str, Any] = {"campaign": campaign_id}
    session.execute(delete(ScoringDay).where(ScoringDay.campaign_id == campaign_id))
    session.execute(delete(ScoringBasis).where(ScoringBasis.campaign_id == campaign_id))
    session.execute(text("DELETE FROM report_totals WHERE campaign_id = :campaign"), params)
    session.execute(
        insert(ScoringBasis).values(
            campaign_id=campaign_id,
            fingerprint=basis.fingerprint,
            count_unverified=basis.count_unverified,
        )
    )
    if basis.days:
        session.execute(
            insert(ScoringDay), [{"campaign_id": campaign_id, "day": d} for d in basis.days]
        )
    session.execute(text(_SUMS.format(campaigns=":campaign", registrations="true")), params)
    return True
