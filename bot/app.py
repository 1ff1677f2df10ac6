"""The application factory: settings in, a wired aiohttp Application out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from bot.clock import Clock
from bot.dispatcher import Dispatcher
from bot.engine import Engine
from bot.handlers import web as web_handlers
from bot.keys import CAMPAIGNS, CLOCK, DATABASE, DISPATCHER, SENDERS, SETTINGS
from bot.router import FLOWS
from bot.senders.dev import DevSender
from config.campaign import Campaign, campaign_files, load_campaigns
from config.settings import Settings
from storage.db import Database

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024  # the largest request any channel needs; more is refused with 413


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    campaigns: dict[str, Campaign] | None = None,
) -> web.Application:
    """Raises CampaignConfigError for a bad campaign file: the service must not start with one."""
    if campaigns is None:
        campaigns = load_campaigns(campaign_files(settings.campaigns_dir))
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CLOCK] = clock or Clock()
    app[CAMPAIGNS] = campaigns
    app[SENDERS] = {"web": DevSender()}
    app.cleanup_ctx.append(_database)
    web_handlers.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.database_url)
    await db.run(lambda _s: None)  # fail fast when the database is unreachable
    db.create_all()
    engine = Engine(FLOWS, idle=timedelta(minutes=settings.conversation_idle_minutes))
    app[DATABASE] = db
    app[DISPATCHER] = Dispatcher(db, app[CAMPAIGNS], app[CLOCK], engine)
    log.info("serving %d campaign(s) on %s", len(app[CAMPAIGNS]), db.url.render_as_string())
    yield
    db.close()
