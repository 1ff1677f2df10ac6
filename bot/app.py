"""The application factory: settings in, a wired aiohttp Application out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from aiohttp import web, web_log

from bot import jobs as scheduled_jobs
from bot.clock import Clock
from bot.dispatcher import Dispatcher
from bot.engine import Engine
from bot.handlers import board, downloads
from bot.handlers import web as web_handlers
from bot.handlers import wechat as wechat_handlers
from bot.keys import CAMPAIGNS, CLOCK, DATABASE, DISPATCHER, SENDERS, SETTINGS
from bot.router import FLOWS
from bot.senders import wecom
from bot.senders.dev import DevSender
from config.campaign import Campaign, campaign_files, load_campaigns
from config.settings import Settings
from storage.db import Database
from storage.leaderboard import sync_scoring_basis

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024  # the largest request any channel needs; more is refused with 413


class AccessLog(web_log.AbstractAccessLogger):
    """The access log without query strings: an export link's signature in a log file would
    let whoever reads the logs download the roster (mobile numbers included)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
        )


@dataclass(frozen=True)
class Services:
    """What flows may use besides the session (`Context.services`): e.g. export links."""

    settings: Settings


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    campaigns: dict[str, Campaign] | None = None,
    jobs: bool = False,
) -> web.Application:
    """Raises CampaignConfigError for a bad campaign file: the service must not start with one.
    `jobs`: also run the scheduled jobs (leader only) and the outbox worker (`serve` does)."""
    if campaigns is None:
        campaigns = load_campaigns(campaign_files(settings.campaigns_dir))
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[CAMPAIGNS] = campaigns
    app[SENDERS] = {"web": DevSender()}
    app.cleanup_ctx.append(_database)
    web_handlers.setup(app)
    board.setup(app)
    downloads.setup(app)
    wechat_handlers.setup(app)  # after _database: its start-up needs the dispatcher
    wecom.setup(app)  # always: robots are configured per campaign
    if settings.feishu_app_id:
        from bot.handlers import feishu  # lark-oapi takes seconds to import: only when used

        feishu.setup(app)  # after _database: its start-up and shutdown need the database
    if jobs:
        scheduled_jobs.setup(app)  # last: on shutdown it stops before the senders close
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.database_url)
    await db.run(lambda _s: None)  # fail fast when the database is unreachable
    db.create_all()
    for campaign in app[CAMPAIGNS].values():
        if await db.run(partial(sync_scoring_basis, campaign=campaign)):
            log.info("report totals of %s rebuilt for its scoring phases", campaign.id)
    engine = Engine(FLOWS, idle=timedelta(minutes=settings.conversation_idle_minutes))
    app[DATABASE] = db
    app[DISPATCHER] = Dispatcher(
        db, app[CAMPAIGNS], app[CLOCK], engine, services=Services(settings=settings)
    )
    log.info("serving %d campaign(s) on %s", len(app[CAMPAIGNS]), db.url.render_as_string())
    yield
    db.close()
