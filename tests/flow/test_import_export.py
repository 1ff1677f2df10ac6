"""Statistics imports and Excel exports against the real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from io import BytesIO
from typing import Any, TypeVar

import pytest
from openpyxl import Workbook, load_workbook
from sqlmodel import Session, SQLModel, select

from bot.exporting import campaign_prizes, export_xlsx, prize_lines
from bot.importing import ImportReport, import_stats
from bot.review import campaign_anomalies
from config.campaign import Campaign
from storage.db import Database
from storage.leaderboard import compute_leaderboard
from storage.models import AuditLog, Deduction, Filing, Registration, StreamReport, Team
from tests.conftest import shanghai
from tests.flow.test_organizer import insert, registration, report, video
from tests.helpers import Campaigns

T = TypeVar("T")
NOW = shanghai(2024, 9, 20, 10, 0)
HEADER = ["主播昵称", "抖音号", "开播时间", "直播时长(分钟)", "直播间成交金额(元)", "退款金额(元)",
          "成交订单数", "累计观看人数", "最高在线人数", "点赞数"]  # fmt: skip
GOOD = [
    ["王小文", "wxw", "2024-09-12 20:00:00", 125, "9,800.50", 300, 120, "1.2万", 800, 5600],
    ["李四", "lisi", datetime(2024, 9, 12, 14, 0), "2小时", "1.5万", "-", 200, 20000, 1500, "3.1w"],
]
BAD = [
    ["张三", "zs", "2024-09-13 20:00", 90, "一千多", 0, 10, 100, 10, 10],
    ["无名氏", "nobody", "2024-09-13 20:00", 90, 100, 0, 10, 100, 10, 10],
]


@pytest.fixture
def demo(all_campaigns: Campaigns) -> Campaign:
    return all_campaigns["demo"]


def run(db: Database, work: Callable[[Session], T]) -> T:
    return db.run_sync(work)


def add(db: Database, *items: SQLModel) -> list[int]:
    return run(db, lambda s: insert(s, *items))


def all_rows(db: Database, model: Any) -> list[Any]:
    return run(db, lambda s: list(s.exec(select(model).order_by(model.id))))


def xlsx(*sheets: tuple[str, list[list[Any]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for title, table in sheets:
        sheet = book.create_sheet(title)
        for row in table:
            sheet.append(row)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def platform_file(*rows: list[Any]) -> bytes:
    """Like a 抖音 export: an instructions sheet first, a title row above the header."""
    return xlsx(
        ("说明", [["本表由平台导出"], ["字段说明：成交金额含退款"]]),
        ("直播数据", [["直播数据 2024-09-01 至 2024-09-30"], HEADER, *rows]),
    )


def do_import(
    db: Database, campaign: Campaign, data: bytes, name: str = "抖音.xlsx"
) -> ImportReport:
    return run(db, lambda s: import_stats(s, campaign, name, data, "cli", NOW))


@pytest.fixture
def streamers(db: Database) -> list[int]:
    return add(
        db,
        registration("王小文", "wxw", user="u1"),
        registration("李四", "lisi", user="u2", group="expert"),
        registration("张三", "zs", user="u3"),
    )


# Imports -------------------------------------------------------------------------------------
def test_two_bad_rows_are_named_and_nothing_is_applied_until_fixed(
    db: Database, demo: Campaign, streamers: list[int]
) -> None:
    wang, lisi, _zhang = streamers
    [self_report] = add(db, report(wang, 12, "20000", status="unverified", source="self"))
    [filing] = add(
        db,
        Filing(
            campaign_id="demo", registration_id=wang, phase_key="competition",
            start_at=shanghai(2024, 9, 12, 20, 0), end_at=shanghai(2024, 9, 12, 22, 0),
            minutes=120, platform="抖音", venue="演示电商中心直播间", status="approved",
            created_at=NOW, updated_at=NOW,
        ),
    )  # fmt: skip
    refused = do_import(db, demo, platform_file(GOOD[0], BAD[0], GOOD[1], BAD[1]))
    assert not refused.ok
    assert [(e.row, e.column) for e in refused.errors] == [(4, "直播间成交金额(元)"), (6, "主播")]
    text = refused.render()
    assert "导入未执行" in text and "工作表「直播数据」" in text and "共4行，发现2处问题" in text
    assert "第4行「直播间成交金额(元)」：「一千多」不是有效的数字" in text
    assert "第6行「主播」：「无名氏 / nobody」不是本赛事已报名的主播" in text
    assert [r.id for r in all_rows(db, StreamReport)] == [self_report]
    assert all_rows(db, StreamReport)[0].status == "unverified"
    assert all_rows(db, AuditLog) == []

    fixed = platform_file(*GOOD)
    done = do_import(db, demo, fixed)
    assert done.ok and (done.added, done.updated, done.superseded) == (2, 0, 1), done.render()
    assert "新增2条" in done.render() and "1条主播自报数据被平台数据取代" in done.render()
    old, first, second = all_rows(db, StreamReport)
    assert old.status == "superseded"
    assert (first.source, first.status, first.filing_id) == ("import", "confirmed", filing)
    assert (first.gmv, first.refunds, first.viewers, first.minutes) == (
        Decimal("9800.50"), Decimal(300), 12000, 125,
    )  # fmt: skip
    assert (second.registration_id, second.gmv, second.refunds, second.likes, second.minutes) == (
        lisi, Decimal(15000), Decimal(0), 31000, 120,
    )  # fmt: skip
    assert first.import_key == f"demo:{wang}:2024-09-12T20:00"

    again = do_import(db, demo, fixed)
    assert (again.added, again.updated, again.unchanged, again.superseded) == (0, 0, 2, 0)
    assert len(all_rows(db, StreamReport)) == 3
    corrected = do_import(db, demo, platform_file(GOOD[0], [*GOOD[1][:4], "1.6万", *GOOD[1][5:]]))
    assert (corrected.updated, corrected.unchanged) == (1, 1)
    assert all_rows(db, StreamReport)[2].gmv == Decimal(16000)
    board = run(db, lambda s: compute_leaderboard(s, demo, NOW))
    found = board.entry(wang)
    assert found is not None and found[1].metrics["gmv"] == 9800.5  # the platform's, not both
    assert [a.action for a in all_rows(db, AuditLog)] == ["import", "import", "import"]
    [anomaly] = run(db, lambda s: campaign_anomalies(s, demo))
    assert (
        anomaly.kind == "self_over_import" and "自报成交 2万元，平台数据 9800.5元" in anomaly.text
    )


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_exported_for_excel(
    db: Database, demo: Campaign, streamers: list[int], encoding: str
) -> None:
    lines = [
        "达人昵称,日期,GMV,观看人次,点赞数",
        '王小文,2024/9/12,"1,200",300,40',
        "李四,2024/9/13,800,100,5",
    ]
    data = "\r\n".join(lines).encode(encoding)
    result = do_import(db, demo, data, "export.csv")
    assert result.ok and result.added == 2, result.render()
    assert result.sheet is None
    assert [r.gmv for r in all_rows(db, StreamReport)] == [Decimal(1200), Decimal(800)]


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("products.xlsx", xlsx(("商品", [["商品名称", "价格"], ["红枣", 39.9]])), "缺少：主播"),
        ("stats.xlsx", xlsx(("数据", [["主播昵称", "成交金额"], ["王小文", 1]])), "日期"),
        ("old.xls", b"\xd0\xcf\x11\xe0", "另存为 .xlsx"),
        ("broken.xlsx", b"PK\x03\x04 not really", "无法打开这个 XLSX 文件"),
        ("notes.docx", b"hello", "只能导入 .xlsx 或 .csv"),
        ("empty.csv", b"", "没有找到含必需列的工作表"),
    ],
)
def test_files_that_cannot_be_imported_say_why(
    db: Database, demo: Campaign, streamers: list[int], name: str, data: bytes, problem: str
) -> None:
    result = do_import(db, demo, data, name)
    assert not result.ok and result.problem is not None
    assert problem in result.render()
    assert all_rows(db, StreamReport) == []


def test_duplicate_rows_and_campaign_aliases(
    db: Database, demo: Campaign, streamers: list[int]
) -> None:
    campaign = demo.model_copy(
        update={"import_aliases": {"gmv": ["带货金额"], "handle": ["快手ID"]}}
    )
    table = [
        ["快手ID", "日期", "带货金额"],
        ["wxw", "2024-09-12", 100],
        ["lisi", "2024-09-12", 200],
        ["WXW", "2024-09-12", 300],
    ]
    result = do_import(db, campaign, xlsx(("Sheet1", table)))
    assert [(e.row, e.reason) for e in result.errors] == [(4, "与第2行重复（同一主播、同一场次）")]
    assert all_rows(db, StreamReport) == []
    typo = demo.model_copy(update={"import_aliases": {"gvm": ["带货金额"]}})
    assert "gvm" in (do_import(db, typo, xlsx(("Sheet1", table))).problem or "")


# Exports -------------------------------------------------------------------------------------
def sheet_rows(db: Database, campaign: Campaign, what: str) -> list[dict[str, Any]]:
    data = run(db, lambda s: export_xlsx(s, campaign, what, NOW))
    sheet = load_workbook(BytesIO(data)).active
    assert sheet is not None and sheet.freeze_panes == "A2"
    values = list(sheet.iter_rows(values_only=True))
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


def test_exports_read_back(db: Database, demo: Campaign, streamers: list[int]) -> None:
    wang, lisi, _ = streamers
    add(
        db,
        Filing(
            campaign_id="demo", registration_id=wang, phase_key="competition",
            start_at=shanghai(2024, 9, 12, 20, 0), end_at=shanghai(2024, 9, 12, 22, 0),
            minutes=120, platform="抖音", venue="演示电商中心直播间", products=["演示红枣 500g"],
            plan="抽奖引流", status="rejected", review_reason="场地冲突", created_at=NOW,
            updated_at=NOW,
        ),
        report(wang, 12, "1000", refunds="100"),
        video(lisi, "https://v.douyin.com/abc/", "flagged"),
    )  # fmt: skip
    [filing] = sheet_rows(db, demo, "filings")
    assert (filing["姓名"], filing["时长(分钟)"], filing["状态"], filing["审核理由"]) == (
        "王小文", 120, "已驳回", "场地冲突",
    )  # fmt: skip
    assert filing["开始时间"] == datetime(2024, 9, 12, 20, 0)  # Asia/Shanghai wall time
    assert filing["商品"] == "演示红枣 500g"
    [row] = sheet_rows(db, demo, "reports")
    assert (row["成交金额(元)"], row["净成交额(元)"], row["来源"], row["状态"]) == (
        1000, 900, "平台导入", "已确认",
    )  # fmt: skip
    assert row["直播日期"] == datetime(2024, 9, 12)
    [clip] = sheet_rows(db, demo, "videos")
    assert (clip["姓名"], clip["状态"], clip["链接"]) == (
        "李四",
        "待核实",
        "https://v.douyin.com/abc/",
    )
    board = sheet_rows(db, demo, "leaderboard")
    assert [(r["参赛组"], r["排名"], r["姓名"]) for r in board] == [
        ("新秀组", 1, "王小文"), ("新秀组", 2, "张三"), ("达人组", 1, "李四"),
    ]  # fmt: skip
    assert board[0]["净成交额(元)"] == 900 and board[0]["状态"] == "正常"
    roster = sheet_rows(db, demo, "registrations")
    assert [r["序号"] for r in roster] == [1, 2, 3]
    assert roster[0]["直播累计销售额(元)"] == 1000 and roster[1]["直播累计销售额(元)"] == 0


def test_what_people_typed_never_becomes_a_formula(db: Database, demo: Campaign) -> None:
    add(db, registration("王小文", '=HYPERLINK("http://evil.example","点我")', user="u1"))
    data = run(db, lambda s: export_xlsx(s, demo, "registrations", NOW))
    sheet = load_workbook(BytesIO(data)).active
    assert sheet is not None
    cell = sheet.cell(row=2, column=4)  # 达人账号名
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://evil.example","点我")', "s")


def test_prizes_follow_the_ranking_with_ties_and_skip_the_disqualified(
    db: Database, demo: Campaign
) -> None:
    ids = add(
        db,
        registration("甲", "a", user="a"),
        registration("乙", "b", user="b"),
        registration("丙", "c", user="c"),
        registration("丁", "d", user="d"),
        registration("戊", "e", user="e", group="expert"),
    )
    a, b, c, d, e = ids
    # 甲 and 乙 tie on every figure; 丙 scores highest but is disqualified; 丁 is last.
    add(db, *(report(r, 5, "5000") for r in (a, b)), report(c, 5, "9000"), report(d, 5, "10"))
    add(db, report(e, 5, "100"))
    add(db, Deduction(campaign_id="demo", registration_id=d, points=1, reason="x", actor="t",
                      created_at=NOW))  # fmt: skip
    run(db, lambda s: _disqualify(s, c))
    prizes = run(db, lambda s: campaign_prizes(s, demo, NOW))
    lines = prize_lines(prizes)
    assert lines[:4] == [
        "【新秀组】",
        "  一等奖 1000元：甲（同分，按规则排序）",
        "  二等奖 500元：乙",
        "  二等奖 500元：丁",
    ]
    assert "  一等奖 2000元：戊" in lines and "  二等奖空缺2名" in lines
    assert "奖金合计 4000元，预算 8000元，结余 4000元" in lines
    rows = sheet_rows(db, demo, "prizes")
    assert [(r["类别"], r["奖项"], r["获奖者"], r["报名编号"]) for r in rows[:3]] == [
        ("新秀组", "一等奖", "甲", a), ("新秀组", "二等奖", "乙", b), ("新秀组", "二等奖", "丁", d),
    ]  # fmt: skip
    assert rows[0]["备注"] == "同分，按规则排序" and rows[0]["奖金(元)"] == 1000
    assert rows[-1]["类别"] == "合计" and rows[-1]["奖金(元)"] == 4000


def _disqualify(session: Session, registration_id: int) -> None:
    reg = session.get(Registration, registration_id)
    assert reg is not None
    reg.disqualified_reason = "刷单"
    session.add(reg)


def test_team_and_unit_exports(db: Database, demo: Campaign, streamers: list[int]) -> None:
    [team] = add(db, Team(campaign_id="demo", name="星火队", code="K7Q2MX", created_at=NOW))
    wang, lisi, _ = streamers

    def join(session: Session) -> None:
        for rid in (wang, lisi):
            reg = session.get(Registration, rid)
            assert reg is not None
            reg.team_id = team
            session.add(reg)

    run(db, join)
    add(db, report(wang, 5, "1000"), report(lisi, 5, "2000"))
    [row] = sheet_rows(db, demo, "teams")
    assert (row["团队"], row["计入排名成员"], row["净成交额(元)"]) == ("星火队", 2, 3000)
    assert set(row["成员"].split("、")) == {"王小文", "李四"}
    units = sheet_rows(db, demo, "units")
    assert units[0]["推荐单位"] == "演示团县委" and units[0]["参赛主播"] == 3
    assert units[0]["净成交额(元)"] == 3000
