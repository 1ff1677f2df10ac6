#!/usr/bin/env python3
"""Command line: serve | check-config (more commands join as the organizer tools land)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from bot.clock import Clock, parse_instant
from config.campaign import CampaignConfigError, campaign_files, load_campaigns
from config.settings import Settings


def _clock(args: argparse.Namespace) -> Clock:
    return Clock(parse_instant(args.now) if args.now else None)


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app

    settings = Settings()
    try:
        app = create_app(settings, clock=_clock(args))
    except CampaignConfigError as exc:
        print("Campaign configuration refused:", file=sys.stderr)
        print(exc, file=sys.stderr)
        return 1
    web.run_app(app, host=args.host, port=args.port, print=lambda *_: None)
    return 0


def check_config(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files] or campaign_files(Settings().campaigns_dir)
    try:
        campaigns = load_campaigns(files)
    except CampaignConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for campaign in campaigns.values():
        print(f"ok  {campaign.id}: {campaign.name} ({len(campaign.phases)} phases)")
    return 0


def _now_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--now", help="start the clock at this ISO-8601 instant (Asia/Shanghai if no offset)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_bot.py", description="直播带货赛事机器人")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="serve the bot over HTTP")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    _now_arg(p)
    p.set_defaults(run=serve)

    p = commands.add_parser("check-config", help="validate campaign files")
    p.add_argument("files", nargs="*", help="campaign YAML files (default: BOT_CAMPAIGNS_DIR)")
    _now_arg(p)
    p.set_defaults(run=check_config)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
