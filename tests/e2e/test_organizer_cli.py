"""The organizer commands of the real command line: import-stats, export, prizes (SQLite and
PostgreSQL through DATABASE_URL, the shipped campaigns through BOT_CAMPAIGNS_DIR)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from openpyxl import load_workbook
from sqlmodel import func, select

from config.settings import ROOT
from storage.db import Database
from storage.models import StreamReport
from tests.e2e.test_cli_and_restart import run_bot
from tests.flow.test_import_export import BAD, GOOD, platform_file
from tests.flow.test_organizer import registration, report

NOW = "2024-09-20T10:00:00+08:00"


def seeded(db_url: str) -> Database:
    db = Database(db_url)
    db.create_all()
    with db.session() as session:
        for reg in (
            registration("王小文", "wxw", user="u1"),
            registration("李四", "lisi", user="u2", group="expert"),
            registration("张三", "zs", user="u3"),
        ):
            session.add(reg)
    return db


def imported(db: Database) -> int:
    with db.session() as session:
        query = (
            select(func.count()).select_from(StreamReport).where(StreamReport.source == "import")
        )
        return int(session.exec(query).one())


def cli(db_url: str, *args: str) -> tuple[int, str, str]:
    env = {"DATABASE_URL": db_url, "BOT_CAMPAIGNS_DIR": str(ROOT / "config" / "campaigns")}
    result = run_bot(*args, "--now", NOW, env=env)
    return result.returncode, result.stdout, result.stderr


def test_import_export_and_prizes_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    db = seeded(db_url)
    bad = tmp_path / "抖音直播数据.xlsx"
    bad.write_bytes(platform_file(GOOD[0], BAD[0], GOOD[1], BAD[1]))
    code, _out, err = cli(db_url, "import-stats", "--campaign", "demo", str(bad))
    assert code == 1
    assert "第4行「直播间成交金额(元)」" in err and "第6行「主播」" in err
    assert imported(db) == 0

    good = tmp_path / "fixed.xlsx"
    good.write_bytes(platform_file(*GOOD))
    code, out, _err = cli(db_url, "import-stats", "--campaign", "demo", str(good))
    assert code == 0 and "新增2条" in out
    code, out, _err = cli(db_url, "import-stats", "--campaign", "demo", str(good))
    assert code == 0 and "新增0条" in out and "未变2条" in out
    assert imported(db) == 2

    with db.session() as session:
        session.add(report(3, 13, "300"))
    roster = tmp_path / "roster.xlsx"
    code, out, _err = cli(
        db_url, "export", "--campaign", "demo", "--what", "registrations", "--out", str(roster)
    )
    assert code == 0 and "wrote" in out
    sheet = load_workbook(BytesIO(roster.read_bytes())).active
    assert sheet is not None
    headers = [c.value for c in sheet[1]]
    assert headers[:4] == ["序号", "报名编号", "姓名", "达人账号名"]
    assert [r[2] for r in sheet.iter_rows(min_row=2, values_only=True)] == [
        "王小文",
        "李四",
        "张三",
    ]

    prizes = tmp_path / "prizes.xlsx"
    code, out, _err = cli(db_url, "prizes", "--campaign", "demo", "--out", str(prizes))
    assert code == 0
    assert "【新秀组】" in out and "一等奖 1000元：王小文" in out and "二等奖 500元：张三" in out
    assert "【达人组】" in out and "一等奖 2000元：李四" in out
    assert "奖金合计 3500元，预算 8000元，结余 4500元" in out
    book = load_workbook(BytesIO(prizes.read_bytes()))
    assert book.sheetnames == ["奖项"]
    db.close()


def test_wrong_arguments_are_refused_plainly(db_url: str, tmp_path: Path) -> None:
    code, _out, err = cli(db_url, "prizes", "--campaign", "nope")
    assert code == 1 and "unknown campaign 'nope'" in err and "demo" in err
    out_file = str(tmp_path / "x.xlsx")
    code, _out, err = cli(
        db_url, "export", "--campaign", "demo", "--what", "secrets", "--out", out_file
    )
    assert code == 2 and "registrations" in err
    code, _out, err = cli(db_url, "import-stats", "--campaign", "demo", str(tmp_path / "none.xlsx"))
    assert code == 1 and "cannot read" in err
