"""Scheduled work: one periodic sweep (APScheduler on the app's event loop) that turns what is
due by the app clock into outbox rows, run by exactly one instance (the leader).

Why a sweeper instead of a job per reminder: APScheduler 3 drops one-shot jobs missed for more
than a second (its default misfire grace) and runs jobs twice when two processes share a job
store. The sweep instead asks, every `SWEEP_SECONDS`, what is due *now* by the app clock (so a
`--now` rehearsal fires at rehearsal time) and enqueues it under idempotency keys: a missed sweep
is made up by the next one, a repeated one adds nothing. The misfire policy is in
bot/rules/reminders.py; the whole argument in docs/jobs.md.

Leader election: PostgreSQL session advisory lock `pg_try_advisory_lock`, held on a dedicated
connection and polled every `LEADER_POLL_SECONDS`. When the leader dies its connection closes and
the lock is free: a standby takes over within a poll. On SQLite (one instance) an exclusive
`flock` on a file next to the database plays the same part for processes on one machine.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from datetime import UTC
from pathlib import Path
from typing import IO

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from bot import digest, reminders
from bot.clock import Clock
from bot.keys import CAMPAIGNS, CLOCK, DATABASE, SENDERS
from bot.outbox_worker import DEFAULT_RATE_LIMITS, OutboxWorker
from config.campaign import Campaign
from storage.db import Database

log = logging.getLogger(__name__)

SWEEP_SECONDS = 10.0
LEADER_POLL_SECONDS = 1.0
SHUTDOWN_SECONDS = 10.0  # then a sweep or delivery still running is cancelled
APPLICATION_NAME = "contest-bot-jobs"  # the lock holder, as pg_stat_activity shows it
# One lock per schema: deployments sharing a PostgreSQL database do not block each other.
LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('contest-bot:jobs:' || current_schema()))"


class LeaderLock:
    """Whether this process runs the jobs. Blocking calls: run them on a thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        if self.db.is_sqlite:
            return self._try_flock()
        if self._conn is None:
            engine = create_engine(
                self.db.url,
                poolclass=NullPool,
                connect_args={"application_name": f"{APPLICATION_NAME}:{os.getpid()}"},
            )
            self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return bool(self._conn.execute(text(LOCK_SQL)).scalar())

    def still_held(self) -> bool:
        """False when the lock's connection broke (the database restarted, a network cut)."""
        if self.db.is_sqlite:
            return self._file is not None
        try:
            assert self._conn is not None
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("lost the jobs lock's database connection")
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            with suppress(Exception):  # closing a broken connection may fail too
                self._conn.close()
            self._conn.engine.dispose()
            self._conn = None
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None

    def _try_flock(self) -> bool:
        if self._file is not None:
            return True
        database = self.db.url.database
        if not database or database == ":memory:":
            return True  # a private database: nobody to share the jobs with
        handle = Path(f"{database}.jobs.lock").open("ab")  # noqa: SIM115 (held: the lock lives with it)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True


class Jobs:
    """The sweep over every campaign, and the leader loop that runs it on one instance."""

    def __init__(
        self,
        db: Database,
        campaigns: Mapping[str, Campaign],
        clock: Clock,
        *,
        charts_dir: Path,
        sweep_seconds: float = SWEEP_SECONDS,
        poll_seconds: float = LEADER_POLL_SECONDS,
    ) -> None:
        self.db = db
        self.campaigns = campaigns
        self.clock = clock
        self.charts_dir = charts_dir
        self.sweep_seconds = sweep_seconds
        self.poll_seconds = poll_seconds
        self.lock = LeaderLock(db)
        self._sweeping: asyncio.Task[None] | None = None

    async def sweep(self) -> None:
        """Enqueue every reminder and digest due now, campaign by campaign."""
        now = self.clock.now()
        for campaign in self.campaigns.values():
            try:
                added = await reminders.enqueue_due(self.db, campaign, now)
                published = await digest.enqueue_due(
                    self.db, campaign, now, charts_dir=self.charts_dir
                )
            except Exception:  # one campaign's failure must not starve the others
                log.exception("sweep of %s failed", campaign.id)
                continue
            added += sum(p.added for p in published)
            if added:
                log.info("%s: %d message(s) enqueued", campaign.id, added)

    async def _scheduled_sweep(self) -> None:
        self._sweeping = asyncio.current_task()  # so that losing the lead can cancel it
        await self.sweep()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: wait to become the leader, then sweep on a schedule while it lasts."""
        try:
            while not stop.is_set():
                if await self._acquire():
                    await self._lead(stop)
                await _wait(stop, self.poll_seconds)
        finally:
            await asyncio.to_thread(self.lock.release)

    async def _acquire(self) -> bool:
        try:
            return await asyncio.to_thread(self.lock.try_acquire)
        except Exception as exc:  # the database is away: keep polling
            log.warning("jobs lock unavailable: %s", exc)
            await asyncio.to_thread(self.lock.release)
            return False

    async def _lead(self, stop: asyncio.Event) -> None:
        log.info("this instance runs the scheduled jobs (pid %s)", os.getpid())
        scheduler = AsyncIOScheduler(timezone=UTC)
        try:
            await self.sweep()  # at once: a new leader makes up for what its predecessor missed
            scheduler.add_job(
                self._scheduled_sweep,
                IntervalTrigger(seconds=self.sweep_seconds),
                id="sweep",
                coalesce=True,  # a late sweep runs once, not once per missed interval
                max_instances=1,  # never two sweeps at once
                misfire_grace_time=None,  # late is fine: the sweep decides what is still due
            )
            scheduler.start()
            while not stop.is_set() and await asyncio.to_thread(self.lock.still_held):
                await _wait(stop, self.poll_seconds)
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            if self._sweeping is not None and not self._sweeping.done():
                self._sweeping.cancel()  # its current chunk is a transaction: it commits or not
                await asyncio.gather(self._sweeping, return_exceptions=True)
            log.info("this instance no longer runs the scheduled jobs")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def setup(app: web.Application) -> None:
    """Run the jobs (leader only) and an outbox worker (every instance) with the app. Register
    it after the database and the senders: cleanup runs in reverse, so these stop first."""

    async def background(app: web.Application) -> AsyncIterator[None]:
        db, clock = app[DATABASE], app[CLOCK]
        stop = asyncio.Event()
        worker = OutboxWorker(db, app[SENDERS], clock, rate_limits=DEFAULT_RATE_LIMITS)
        jobs = Jobs(db, app[CAMPAIGNS], clock, charts_dir=digest.CHARTS_DIR)
        tasks = [asyncio.create_task(worker.run_forever(stop)), asyncio.create_task(jobs.run(stop))]
        yield
        stop.set()
        _done, running = await asyncio.wait(tasks, timeout=SHUTDOWN_SECONDS)
        for task in running:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(background)


async def run_command(
    app: web.Application,
    what: str,
    campaign_id: str,
    *,
    dry_run: bool,
    out: Callable[[str], None] = print,
) -> int:
    """`run_bot.py remind|digest`: enqueue what is due now for one campaign and deliver it
    through the app's senders; dry, print it and change nothing. The digest is the latest
    period's, however late (a person asked for it); a period already out is not sent again."""
    campaign = app[CAMPAIGNS].get(campaign_id)
    if campaign is None:
        out(f"unknown campaign {campaign_id!r} (known: {', '.join(app[CAMPAIGNS])})")
        return 1
    runner = web.AppRunner(app)  # the app's start-up: database and senders, no HTTP server
    await runner.setup()
    try:
        db, clock = app[DATABASE], app[CLOCK]
        now = clock.now()
        if what == "remind":
            emit = (lambda r: out(reminders.line(r))) if dry_run else None
            added = await reminders.enqueue_due(db, campaign, now, dry_run=dry_run, emit=emit)
            out(f"{added} reminder(s) {'due' if dry_run else 'enqueued'} for {campaign.id}")
        else:
            published = await digest.enqueue_due(
                db, campaign, now, charts_dir=digest.CHARTS_DIR, on_demand=True, dry_run=dry_run
            )
            for item in published:
                to = ", ".join(f"{c}:{r}" for c, r in item.recipients) or "nobody configured"
                out(f"{item.text}\n-> {to} ({item.added} enqueued)")
            if not published:
                out(
                    f"no digest due for {campaign.id}: none scheduled, or the latest one was already sent"
                )
        if not dry_run:
            worker = OutboxWorker(db, app[SENDERS], clock, rate_limits=DEFAULT_RATE_LIMITS)
            while await worker.run_once():
                pass
            stats = worker.stats
            out(f"delivered {stats['sent']}, to retry {stats['retried']}, dead {stats['dead']}")
    finally:
        await runner.cleanup()
    return 0
