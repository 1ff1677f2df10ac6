"""bot.rules.import_rows: headers as the platforms write them, cell values, row errors, matching."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.clock import SHANGHAI
from bot.rules.import_rows import (
    Figures,
    Streamer,
    aliases_for,
    find_header,
    match_rows,
    parse_rows,
    parse_when,
)

BUILTIN = aliases_for({})
DOUYIN = ["主播昵称", "抖音号", "开播时间", "直播时长(分钟)", "直播间成交金额(元)", "退款金额(元)",
          "成交订单数", "累计观看人数", "最高在线人数", "点赞数"]  # fmt: skip


def parsed(header: list[str], *rows: list[Any], aliases: Any = BUILTIN) -> Any:
    table = [header, *rows]
    found, missing = find_header(table, aliases)
    assert found is not None, missing
    return parse_rows(table, found)


@pytest.mark.parametrize(
    ("header", "field", "factor"),
    [
        ("成交金额", "gmv", Decimal(1)),
        ("\ufeff成交金额(元)", "gmv", Decimal(1)),
        ("成交金额（万元）", "gmv", Decimal(10000)),
        ("GMV", "gmv", Decimal(1)),
        ("直播间成交金额", "gmv", Decimal(1)),
        ("销售额", "gmv", Decimal(1)),
        ("退款金额(元)", "refunds", Decimal(1)),
        ("观看人次", "viewers", Decimal(1)),
        ("累计观看人数(万人)", "viewers", Decimal(10000)),
        ("最高在线", "peak_viewers", Decimal(1)),
        ("点赞数", "likes", Decimal(1)),
        ("成交订单数", "orders", Decimal(1)),
        ("直播时长(分钟)", "minutes", Decimal(1)),
        ("直播时长（小时）", "minutes", Decimal(60)),
        ("时长 (秒)", "minutes", Decimal(1) / 60),
    ],
)
def test_header_aliases_and_units(header: str, field: str, factor: Decimal) -> None:
    found, _ = find_header([["主播昵称", "日期", header]], BUILTIN)
    assert found is not None
    assert found.columns[field] == 2
    assert found.factors[field] == factor


def test_header_below_a_title_row_and_the_preferred_alias_wins() -> None:
    table = [
        ["直播数据导出 2024-09-01 至 2024-09-30"],
        [],
        ["达人昵称", "日期", "观看人次", "累计观看人数"],
        ["王小文", "2024-09-12", 100, 80],
    ]
    header, _ = find_header(table, BUILTIN)
    assert header is not None and header.row == 3
    assert header.columns["viewers"] == 3  # 累计观看人数 (people) over 观看人次 (visits)
    [row] = parse_rows(table, header).rows
    assert (row.row, row.values["viewers"]) == (4, 80)


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["日期", "成交金额"], "主播"),
        (["主播昵称", "成交金额"], "日期"),
        (["主播昵称", "日期", "备注"], "数据"),
        (["商品名称", "价格", "库存"], "主播"),
    ],
)
def test_a_table_without_the_needed_columns_names_what_is_missing(
    header: list[str], missing: str
) -> None:
    found, lacking = find_header([header, ["x"] * len(header)], BUILTIN)
    assert found is None
    assert any(missing in item for item in lacking)


def test_campaign_aliases_come_first_and_unknown_fields_are_refused() -> None:
    aliases = aliases_for({"gmv": ["带货金额"], "handle": ["快手ID号"]})
    found, _ = find_header([["快手ID号", "日期", "带货金额", "成交金额"]], aliases)
    assert found is not None
    assert (found.columns["handle"], found.columns["gmv"]) == (0, 2)
    with pytest.raises(ValueError, match="gvm"):
        aliases_for({"gvm": ["金额"]})


@pytest.mark.parametrize(
    ("cell", "field", "expected"),
    [
        ("1.2万", "gmv", Decimal("12000.00")),
        ("12,345.60", "gmv", Decimal("12345.60")),
        ("¥88.5", "gmv", Decimal("88.50")),
        (3000, "gmv", Decimal("3000.00")),
        (1234.5, "gmv", Decimal("1234.50")),
        ("3,000人", "viewers", 3000),
        ("2.5w", "likes", 25000),
        (1500.0, "orders", 1500),
        ("120", "minutes", 120),
        ("2小时", "minutes", 120),
        ("1小时30分钟", "minutes", 90),
        ("01:30:00", "minutes", 90),
        ("-", "gmv", None),
        ("", "likes", None),
    ],
)
def test_cell_values(cell: Any, field: str, expected: Any) -> None:
    header = ["主播昵称", "日期", "成交金额", "累计观看人数", "点赞数", "成交订单数", "直播时长"]
    column = {"gmv": 2, "viewers": 3, "likes": 4, "orders": 5, "minutes": 6}[field]
    row: list[Any] = ["王小文", "2024-09-12", None, None, None, None, None]
    row[column] = cell
    result = parsed(header, row)
    assert result.errors == []
    assert result.rows[0].values.get(field) == expected


def test_units_in_headers_scale_values() -> None:
    result = parsed(
        ["主播昵称", "日期", "成交金额(万元)", "直播时长(小时)"],
        ["王小文", "2024-09-12", "1.5", 2.5],
    )
    assert result.rows[0].values == {"gmv": Decimal("15000.00"), "minutes": 150}


@pytest.mark.parametrize("cell", ["2.5w", "2.5万", "25千"])
def test_a_cell_with_its_own_magnitude_is_not_scaled_again(cell: str) -> None:
    result = parsed(["主播昵称", "日期", "成交金额(万元)"], ["王小文", "2024-09-12", cell])
    assert result.rows[0].values == {"gmv": Decimal("25000.00")}


@pytest.mark.parametrize(
    ("cell", "column", "reason"),
    [
        ("abc", "成交金额", "「abc」不是有效的数字"),
        ("-5", "成交金额", "不能为负数"),
        ("12.5", "点赞数", "应为整数"),
        ("两个小时左右", "直播时长", "不是有效的时长"),
        ("昨天", "日期", "「昨天」不是有效的日期"),
        ("2024-02-30", "日期", "不是有效的日期"),
        (None, "日期", "缺少日期"),
    ],
)
def test_bad_cells_are_named_by_row_and_column(cell: Any, column: str, reason: str) -> None:
    header = ["主播昵称", "日期", "成交金额", "点赞数", "直播时长"]
    row: list[Any] = ["王小文", "2024-09-12", 100, 5, 60]
    row[header.index(column)] = cell
    result = parsed(header, ["李四", "2024-09-12", 1, 1, 1], row)
    assert len(result.rows) == 1
    [error] = result.errors
    assert (error.row, error.column) == (3, column)
    assert reason in error.reason


def test_refunds_above_gmv_missing_streamer_blank_and_totals_rows() -> None:
    result = parsed(
        ["主播昵称", "日期", "成交金额", "退款金额"],
        ["王小文", "2024-09-12", 100, 200],
        [None, "2024-09-12", 100, 0],
        [None, None, None, None],
        ["合计", None, 200, 200],
    )
    assert result.rows == []
    assert [(e.row, e.reason) for e in result.errors] == [
        (2, "退款金额大于成交金额"),
        (3, "缺少主播昵称或账号"),
    ]


@pytest.mark.parametrize(
    ("cell", "day", "start"),
    [
        ("2024-09-12", date(2024, 9, 12), None),
        ("2024/9/12 20:05", date(2024, 9, 12), datetime(2024, 9, 12, 20, 5, tzinfo=SHANGHAI)),
        ("2024年9月12日", date(2024, 9, 12), None),
        ("2024-09-12 20:05:33", date(2024, 9, 12), datetime(2024, 9, 12, 20, 5, tzinfo=SHANGHAI)),
        (
            datetime(2024, 9, 12, 20, 5),
            date(2024, 9, 12),
            datetime(2024, 9, 12, 20, 5, tzinfo=SHANGHAI),
        ),
        (datetime(2024, 9, 12), date(2024, 9, 12), None),
        (date(2024, 9, 12), date(2024, 9, 12), None),
    ],
)
def test_dates(cell: Any, day: date, start: datetime | None) -> None:
    assert parse_when(cell) == (day, start)


STREAMERS = [
    Streamer(1, "王小文", "wxw_live"),
    Streamer(2, "李四", "lisi"),
    Streamer(3, "张三", "zs1"),
    Streamer(4, "张三", "zs2"),
    Streamer(5, "赵六", "李四"),  # a handle that is someone else's name
]


def figures(row: int, who: dict[str, str], day: int = 12, hour: int | None = None) -> Figures:
    start = datetime(2024, 9, day, hour, 0, tzinfo=SHANGHAI) if hour is not None else None
    return Figures(row, who, date(2024, 9, day), start, {"gmv": Decimal(1)})


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ({"name": "王小文"}, 1),
        ({"name": "ＷＸＷ_LIVE"}, 1),  # a 昵称 column holding the account, full-width, any case
        ({"handle": "@lisi"}, 2),
        ({"handle": "zs2", "name": "张三"}, 4),  # the account decides between namesakes
        ({"handle": "李四", "name": "赵六"}, 5),
    ],
)
def test_rows_match_streamers_by_handle_or_name(who: dict[str, str], expected: int) -> None:
    who = {k: v.lstrip("@") for k, v in who.items()}
    matched, errors = match_rows([figures(2, who)], STREAMERS)
    assert errors == []
    assert matched[0].streamer.id == expected


def test_unknown_ambiguous_and_duplicate_rows_are_errors() -> None:
    rows = [
        figures(2, {"name": "王小文"}, hour=20),
        figures(3, {"name": "无名氏"}),
        figures(4, {"name": "张三"}),
        figures(5, {"name": "李四"}),  # 李四 by name and 赵六 by handle
        figures(6, {"handle": "wxw_live"}, hour=20),
        figures(7, {"name": "王小文"}, hour=14),  # same day, another stream: fine
    ]
    matched, errors = match_rows(rows, STREAMERS)
    assert [m.figures.row for m in matched] == [2, 7]
    assert [(e.row, e.reason) for e in errors] == [
        (3, "「无名氏」不是本赛事已报名的主播"),
        (4, "「张三」对应多位主播（报名3、报名4），请改用账号"),
        (5, "「李四」对应多位主播（报名2、报名5），请改用账号"),
        (6, "与第2行重复（同一主播、同一场次）"),
    ]


@given(
    st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
    st.sampled_from(["plain", "commas", "yuan", "wan"]),
)
def test_amounts_survive_the_ways_exports_write_them(value: Decimal, style: str) -> None:
    assume(style != "wan" or value > 0)  # nobody writes 0万
    text = {
        "plain": f"{value:f}",
        "commas": f"{value:,.2f}",
        "yuan": f"¥{value:f}",
        "wan": f"{value / 10000:f}万",
    }[style]
    result = parsed(["主播昵称", "日期", "成交金额"], ["王小文", "2024-09-12", text])
    assert result.errors == []
    assert result.rows[0].values["gmv"] == value.quantize(Decimal("0.01"))
