#!/usr/bin/env python3
"""Command line: serve | check-config | qr | import-stats | export | prizes | … (see --help)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.clock import Clock, parse_instant
from config.campaign import Campaign, CampaignConfigError, campaign_files, load_campaigns
from config.settings import DEV_SECRET, Settings

if TYPE_CHECKING:
    from storage.db import Database


def _clock(args: argparse.Namespace) -> Clock:
    return Clock(parse_instant(args.now) if args.now else None)


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import AccessLog, create_app

    settings = Settings()
    if not settings.dev and (settings.secret_key == DEV_SECRET or len(settings.secret_key) < 16):
        # It signs web-chat identities and export links: a known value lets anyone forge them.
        print(
            "BOT_SECRET_KEY must be set in production to a random value of 16+ characters "
            "(e.g. openssl rand -hex 32), the same on every instance.",
            file=sys.stderr,
        )
        return 1
    if "public_base_url" not in settings.model_fields_set:
        # Links the bot sends (exports, QR codes) point at where it actually listens.
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        settings = settings.model_copy(update={"public_base_url": f"http://{host}:{args.port}"})
    try:
        app = create_app(settings, clock=_clock(args), jobs=True)
    except CampaignConfigError as exc:
        print("Campaign configuration refused:", file=sys.stderr)
        print(exc, file=sys.stderr)
        return 1
    web.run_app(
        app, host=args.host, port=args.port, print=lambda *_: None, access_log_class=AccessLog
    )
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


def qr(args: argparse.Namespace) -> int:
    from bot.qr import QRError, generate

    settings = Settings()
    try:
        campaigns = load_campaigns(campaign_files(settings.campaigns_dir))
        lines = generate(
            settings,
            campaigns,
            _clock(args),
            campaign_id=args.campaign,
            unit_key=args.unit,
            out=Path(args.out),
            permanent=args.permanent,
            web=args.web,
            board=args.board,
        )
    except (CampaignConfigError, QRError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def wechat_menu(args: argparse.Namespace) -> int:
    import asyncio

    from bot.handlers.wechat import build_menu
    from bot.router import COMMANDS, FLOW_KEYWORDS
    from bot.wechat_api import WeChatAPIError, command_line_api

    menu = build_menu({*FLOW_KEYWORDS, *COMMANDS})
    try:
        with command_line_api(Settings(), _clock(args)) as api:
            asyncio.run(api.create_menu(menu))
    except WeChatAPIError as exc:
        print(f"menu not published: {exc}", file=sys.stderr)
        return 1
    for button in menu["button"]:
        subs = [b["name"] for b in button.get("sub_button", [])]
        print(f"{button['name']}: {' / '.join(subs)}" if subs else button["name"])
    return 0


def _organizer_tools(args: argparse.Namespace) -> tuple[Campaign, Database] | None:
    """(campaign, database) for import-stats / export / prizes; None after printing why not."""
    from storage.db import Database

    settings = Settings()
    try:
        campaigns = load_campaigns(campaign_files(settings.campaigns_dir))
    except CampaignConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    campaign = campaigns.get(args.campaign)
    if campaign is None:
        print(
            f"unknown campaign {args.campaign!r} (known: {', '.join(campaigns)})", file=sys.stderr
        )
        return None
    db = Database(settings.database_url)
    db.create_all()
    return campaign, db


def import_stats_command(args: argparse.Namespace) -> int:
    from bot.importing import import_stats

    opened = _organizer_tools(args)
    if opened is None:
        return 1
    campaign, db = opened
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    now = _clock(args).now()
    report = db.run_sync(lambda s: import_stats(s, campaign, path.name, data, "cli", now))
    db.close()
    print(report.render(limit=None), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def export_command(args: argparse.Namespace) -> int:
    from bot.exporting import EXPORTS, export_xlsx

    if args.what not in EXPORTS:
        print(f"unknown --what {args.what!r} (one of: {', '.join(EXPORTS)})", file=sys.stderr)
        return 2
    opened = _organizer_tools(args)
    if opened is None:
        return 1
    campaign, db = opened
    now = _clock(args).now()
    data = db.run_sync(lambda s: export_xlsx(s, campaign, args.what, now))
    db.close()
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({args.what}, {campaign.id})")
    return 0


def prizes_command(args: argparse.Namespace) -> int:
    from bot.exporting import campaign_prizes, prize_lines, prizes_sheet, workbook_bytes

    opened = _organizer_tools(args)
    if opened is None:
        return 1
    campaign, db = opened
    now = _clock(args).now()
    prizes = db.run_sync(lambda s: campaign_prizes(s, campaign, now))
    if args.out:
        data = db.run_sync(lambda s: workbook_bytes(prizes_sheet(s, campaign, now)))
        Path(args.out).write_bytes(data)
    db.close()
    print("\n".join(prize_lines(prizes)))
    return 0


def jobs_command(args: argparse.Namespace) -> int:
    """remind | digest: what is due now for one campaign, enqueued and delivered (or printed)."""
    import asyncio

    from bot.app import create_app
    from bot.jobs import run_command

    try:
        app = create_app(Settings(), clock=_clock(args))
    except CampaignConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return asyncio.run(run_command(app, args.command, args.campaign, dry_run=args.dry_run))


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

    p = commands.add_parser(
        "qr", help="make a registration QR code poster (PNG), or one to the leaderboard (--board)"
    )
    p.add_argument("--campaign", required=True, help="campaign id")
    p.add_argument("--unit", help="recommending unit key (units in the campaign file)")
    p.add_argument("--permanent", action="store_true", help="a permanent WeChat code")
    p.add_argument("--web", action="store_true", help="a code to the web sign-up page")
    p.add_argument(
        "--board", action="store_true", help="a code to the public leaderboard page /board/ID"
    )
    p.add_argument("--out", required=True, help="the PNG file to write")
    _now_arg(p)
    p.set_defaults(run=qr)

    p = commands.add_parser("wechat-menu", help="publish the WeChat custom menu")
    _now_arg(p)
    p.set_defaults(run=wechat_menu)

    p = commands.add_parser("import-stats", help="import platform statistics (CSV or XLSX)")
    p.add_argument("--campaign", required=True, help="campaign id")
    p.add_argument("file", help="the platform's export: .xlsx or .csv")
    _now_arg(p)
    p.set_defaults(run=import_stats_command)

    p = commands.add_parser("export", help="export an Excel sheet")
    p.add_argument("--campaign", required=True, help="campaign id")
    p.add_argument("--what", required=True, help="registrations, leaderboard, prizes, … (see docs)")
    p.add_argument("--out", required=True, help="the .xlsx file to write")
    _now_arg(p)
    p.set_defaults(run=export_command)

    p = commands.add_parser("prizes", help="allocate prizes by the campaign's tiers")
    p.add_argument("--campaign", required=True, help="campaign id")
    p.add_argument("--out", help="also write the prize list as .xlsx")
    _now_arg(p)
    p.set_defaults(run=prizes_command)

    for name, what in (("remind", "reminders"), ("digest", "the leaderboard digest")):
        p = commands.add_parser(name, help=f"enqueue and deliver {what} due now")
        p.add_argument("--campaign", required=True, help="campaign id")
        p.add_argument("--dry-run", action="store_true", help="print, enqueue and send nothing")
        _now_arg(p)
        p.set_defaults(run=jobs_command)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
