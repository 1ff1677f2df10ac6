"""Typed keys of the Application: what handlers may take from it."""

from __future__ import annotations

from aiohttp import web

from bot.clock import Clock
from bot.dispatcher import Dispatcher
from bot.senders.base import Sender
from config.campaign import Campaign
from config.settings import Settings
from storage.db import Database

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
CAMPAIGNS = web.AppKey("campaigns", dict[str, Campaign])
DATABASE = web.AppKey("database", Database)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
# Outbound senders by channel: the outbox worker delivers each row through its channel's.
SENDERS = web.AppKey("senders", dict[str, Sender])
