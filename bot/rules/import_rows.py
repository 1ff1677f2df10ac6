"""Statistics imports, the pure part: which column is which, and what each row says.

A platform export is a table of cells (strings, numbers, dates: what CSV and openpyxl give).
`find_header` finds the header row and maps its columns to fields through aliases (the
campaign's `import_aliases` first, then the names the platforms use, see PLATFORM-NOTES);
units written in headers (`成交金额(万元)`, `直播时长(小时)`) scale the values. `parse_rows` turns
each data row into figures or row errors (row, column, reason); `match_rows` names the streamer of
each row and refuses unknown, ambiguous and duplicate ones. Nothing here touches the database.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from bot.clock import SHANGHAI
from bot.rules.parsing import parse_amount, parse_count, parse_duration_minutes

# Field -> header names, most specific first: when a file has two columns for one field (累计观看人数
# and 观看人次), the one whose name comes first here wins and the other is left alone.
ALIASES: dict[str, tuple[str, ...]] = {
    "handle": (
        "抖音号", "快手号", "视频号", "达人账号名", "达人账号", "主播账号", "账号名称", "账号名",
        "账号", "账号id", "抖音id", "快手id", "平台账号", "uid",
    ),
    "name": (
        "主播昵称", "达人昵称", "主播名称", "主播姓名", "达人名称", "主播", "达人", "昵称", "姓名",
    ),
    "when": (
        "开播时间", "直播开始时间", "开始时间", "直播日期", "开播日期", "日期", "直播时间",
    ),
    "gmv": (
        "直播间成交金额", "成交金额", "全域成交金额", "直播成交金额", "带货成交金额", "总成交金额",
        "成交额", "销售额", "gmv", "直播累计销售额",
    ),
    "refunds": ("退款金额", "退款额", "退货金额", "退款"),
    "orders": ("成交订单数", "成交订单", "订单数", "成交单数", "订单量", "成交件数"),
    "viewers": (
        "累计观看人数", "累积观看人数", "观看人数", "累计观看人次", "观看人次", "场观",
    ),
    "peak_viewers": (
        "最高在线", "最高在线人数", "最高同时在线人数", "在线人数峰值", "实时在线人数峰值",
        "峰值在线",
    ),
    "likes": ("点赞数", "点赞次数", "点赞量", "获赞量", "点赞"),
    "minutes": ("直播时长", "开播时长", "时长"),
}  # fmt: skip
WHO = ("name", "handle")
AMOUNTS = ("gmv", "refunds")
METRICS = (*AMOUNTS, "orders", "viewers", "peak_viewers", "likes", "minutes")
HEADER_SCAN_ROWS = 10  # exports often put a title or a date range above the header
MAX_MINUTES = 24 * 60
EMPTY_CELLS = {"", "-", "--", "—", "/", "无", "null", "none", "n/a"}
SUMMARY_WORDS = {"合计", "总计", "汇总", "小计", "total"}
CENT = Decimal("0.01")
MAX_VALUE = Decimal(10) ** 12

_UNIT = re.compile(r"^(?P<base>.*?)[(\[](?P<unit>[^()\[\]]*)[)\]]$")
_UNIT_FACTORS: dict[str, Decimal] = {
    "元": Decimal(1), "rmb": Decimal(1), "¥": Decimal(1), "人民币": Decimal(1),
    "千元": Decimal(1000), "万元": Decimal(10000), "万": Decimal(10000), "w": Decimal(10000),
    "人": Decimal(1), "次": Decimal(1), "人次": Decimal(1), "个": Decimal(1), "单": Decimal(1),
    "笔": Decimal(1), "件": Decimal(1), "万人": Decimal(10000), "万次": Decimal(10000),
    "万人次": Decimal(10000),
}  # fmt: skip
_MINUTE_FACTORS: dict[str, Decimal] = {
    "分钟": Decimal(1), "分": Decimal(1), "min": Decimal(1), "mins": Decimal(1),
    "m": Decimal(1), "小时": Decimal(60), "h": Decimal(60), "时": Decimal(60),
    "秒": Decimal(1) / 60, "s": Decimal(1) / 60,
}  # fmt: skip
_DATE = re.compile(
    r"(?P<y>[0-9]{4})\s*[-/.年]\s*(?P<m>[0-9]{1,2})\s*[-/.月]\s*(?P<d>[0-9]{1,2})\s*日?"
    r"(?:[\sT]*(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::[0-9]{2}(?:\.[0-9]+)?)?)?"
)
_HMS = re.compile(r"(?P<h>[0-9]{1,3}):(?P<m>[0-5][0-9]):(?P<s>[0-5][0-9])")


@dataclass(frozen=True)
class RowError:
    row: int  # as the spreadsheet numbers it (1 = the first line of the sheet)
    column: str  # the header as written in the file, or the field's name
    reason: str


@dataclass(frozen=True)
class Header:
    row: int  # 1-based number of the header row
    columns: dict[str, int]  # field -> 0-based column index
    titles: dict[str, str]  # field -> the header text as written
    factors: dict[str, Decimal]  # field -> unit factor taken from the header


@dataclass(frozen=True)
class Figures:
    """One data row: who (as written), when, and the figures it gives (absent fields omitted)."""

    row: int
    who: dict[str, str]  # handle/name -> the text in the file
    day: date
    start: datetime | None  # when the row gives a time of day (one stream), else None
    values: dict[str, Decimal | int]

    @property
    def stream_key(self) -> str:
        return self.start.strftime("%Y-%m-%dT%H:%M") if self.start else self.day.isoformat()


@dataclass(frozen=True)
class Streamer:
    """What an import may match a row against: a registration's id, name and handle."""

    id: int
    name: str
    handle: str


@dataclass(frozen=True)
class Matched:
    figures: Figures
    streamer: Streamer


@dataclass
class Parsed:
    rows: list[Figures] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def fold(text: str) -> str:
    """How headers and names are compared: NFKC, no BOM or spaces, case-folded."""
    text = unicodedata.normalize("NFKC", text).replace("\ufeff", "")
    return re.sub(r"\s+", "", text).casefold()


def _split_unit(header: str) -> tuple[str, str]:
    folded = fold(header)
    match = _UNIT.match(folded)
    return (match["base"], match["unit"]) if match else (folded, "")


def aliases_for(extra: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The campaign's aliases (tried first) merged with the built-in ones.

    Raises ValueError naming an unknown field, so a typo in `import_aliases` is never silent.
    """
    unknown = sorted(set(extra) - set(ALIASES))
    if unknown:
        known = "、".join(ALIASES)
        raise ValueError(
            f"import_aliases 中的「{'、'.join(unknown)}」不是可导入的列（可用：{known}）"
        )
    return {
        key: tuple(dict.fromkeys([*(fold(a) for a in extra.get(key, ())), *names]))
        for key, names in ALIASES.items()
    }


def _map_header(cells: Sequence[Any], aliases: Mapping[str, Sequence[str]]) -> Header | None:
    bases: list[tuple[str, str, str]] = []  # (base, unit, as written) per column
    for cell in cells:
        text = "" if cell is None else str(cell)
        base, unit = _split_unit(text)
        bases.append((base, unit, text.replace("\ufeff", "").strip()))
    columns: dict[str, int] = {}
    for key, names in aliases.items():
        for name in names:
            index = next(
                (
                    i
                    for i, (b, _u, _t) in enumerate(bases)
                    if b == name and i not in columns.values()
                ),
                None,
            )
            if index is not None:
                columns[key] = index
                break
    if not columns:
        return None
    titles = {k: bases[i][2] for k, i in columns.items()}
    factors = {k: _factor(k, bases[i][1]) for k, i in columns.items()}
    return Header(row=0, columns=columns, titles=titles, factors=factors)


def _factor(key: str, unit: str) -> Decimal:
    if key == "minutes":
        return _MINUTE_FACTORS.get(unit, Decimal(1))
    if key in METRICS:
        return _UNIT_FACTORS.get(unit, Decimal(1))
    return Decimal(1)


def missing_fields(header: Header | None) -> list[str]:
    """What a header lacks: a streamer column, a date column, at least one figure."""
    columns = header.columns if header else {}
    missing = []
    if not any(k in columns for k in WHO):
        missing.append("主播（" + "/".join(ALIASES["name"][:3] + ALIASES["handle"][:1]) + "）")
    if "when" not in columns:
        missing.append("日期（" + "/".join(ALIASES["when"][:3]) + "）")
    if not any(k in columns for k in METRICS):
        missing.append("数据（成交金额/观看人数/点赞数等）")
    return missing


def find_header(
    rows: Sequence[Sequence[Any]], aliases: Mapping[str, Sequence[str]]
) -> tuple[Header | None, list[str]]:
    """The first of the top rows that names every required column, or the best try and what
    it lacks (for the error message)."""
    best: Header | None = None
    for number, cells in enumerate(rows[:HEADER_SCAN_ROWS], 1):
        header = _map_header(cells, aliases)
        if header is None:
            continue
        header = Header(number, header.columns, header.titles, header.factors)
        if not missing_fields(header):
            return header, []
        if best is None or len(header.columns) > len(best.columns):
            best = header
    return None, missing_fields(best)


def _text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    return unicodedata.normalize("NFKC", str(cell)).strip()


def _is_empty(cell: Any) -> bool:
    return _text(cell).casefold() in EMPTY_CELLS


_MAGNITUDE = re.compile(r"[万千亿wWkK]")


def _decimal(cell: Any) -> Decimal | None:
    """A number, '1.2万', '12,345.6', '¥88', '3000人', '-5'; None when it is not a number."""
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int | float | Decimal):
        try:
            value = Decimal(str(cell))
        except InvalidOperation:
            return None
        return value if value.is_finite() else None
    text = _text(cell)
    if text.startswith("-"):
        value = _decimal(text[1:])
        return -value if value is not None else None
    count = parse_count(text)
    return Decimal(count) if count is not None else parse_amount(text)


def parse_when(cell: Any) -> tuple[date, datetime | None] | None:
    """(day, start or None) from a date cell: a datetime/date object or '2024-09-12 20:00'."""
    if isinstance(cell, datetime):
        local = cell.astimezone(SHANGHAI) if cell.tzinfo else cell.replace(tzinfo=SHANGHAI)
        has_time = (local.hour, local.minute, local.second) != (0, 0, 0)
        return local.date(), local.replace(second=0, microsecond=0) if has_time else None
    if isinstance(cell, date):
        return cell, None
    match = _DATE.fullmatch(_text(cell))
    if match is None:
        return None
    try:
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
        if match["H"] is None:
            return day, None
        start = datetime(day.year, day.month, day.day, int(match["H"]), int(match["M"]))
    except ValueError:
        return None
    return day, start.replace(tzinfo=SHANGHAI)


def _minutes(cell: Any, factor: Decimal) -> int | None:
    """Minutes from 120 (scaled by the header's unit), '02:00:00', '2小时', '1小时30分'."""
    text = _text(cell)
    hms = _HMS.fullmatch(text)
    number = _decimal(cell)
    if hms:
        value = Decimal(int(hms["h"]) * 60 + int(hms["m"])) + Decimal(int(hms["s"])) / 60
    elif number is not None:
        value = number * factor
    else:
        parsed = parse_duration_minutes(text)
        if parsed is None:
            return None
        value = Decimal(parsed)
    minutes = int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return minutes if 0 <= minutes <= MAX_MINUTES else None


def _metric(key: str, cell: Any, factor: Decimal) -> Decimal | int | str:
    """The value, or the reason it is refused (a str)."""
    if key == "minutes":
        minutes = _minutes(cell, factor)
        return (
            minutes
            if minutes is not None
            else f"「{_text(cell)}」不是有效的时长（如 120、2小时、02:00:00）"
        )
    number = _decimal(cell)
    if number is None:
        return f"「{_text(cell)}」不是有效的数字"
    if not (isinstance(cell, str) and _MAGNITUDE.search(cell)):
        number *= factor  # a cell that says 2.5万 is already in 元, whatever the header's unit
    if number < 0:
        return f"「{_text(cell)}」不能为负数"
    if number > MAX_VALUE:
        return f"「{_text(cell)}」数值过大"
    if key in AMOUNTS:
        return number.quantize(CENT, rounding=ROUND_HALF_UP)
    if number != number.to_integral_value():
        return f"「{_text(cell)}」应为整数"
    return int(number)


def _cell(cells: Sequence[Any], header: Header, key: str) -> Any:
    index = header.columns[key]
    return cells[index] if index < len(cells) else None


def parse_rows(rows: Sequence[Sequence[Any]], header: Header) -> Parsed:
    """Every row below the header: its figures, or every problem it has."""
    parsed = Parsed()
    for number, cells in enumerate(rows[header.row :], header.row + 1):
        if all(_is_empty(c) for c in cells):
            continue
        who = {k: _text(_cell(cells, header, k)).lstrip("@") for k in WHO if k in header.columns}
        who = {k: v for k, v in who.items() if v and v.casefold() not in EMPTY_CELLS}
        if any(fold(v) in SUMMARY_WORDS for v in who.values()):
            continue  # a totals line at the bottom of an export
        errors: list[RowError] = []
        if not who:
            titles = "/".join(header.titles[k] for k in WHO if k in header.titles)
            errors.append(RowError(number, titles, "缺少主播昵称或账号"))
        when_cell = _cell(cells, header, "when")
        when = parse_when(when_cell)
        if when is None:
            reason = "缺少日期" if _is_empty(when_cell) else f"「{_text(when_cell)}」不是有效的日期"
            errors.append(RowError(number, header.titles["when"], reason))
        values: dict[str, Decimal | int] = {}
        for key in METRICS:
            if key not in header.columns or _is_empty(_cell(cells, header, key)):
                continue
            value = _metric(key, _cell(cells, header, key), header.factors[key])
            if isinstance(value, str):
                errors.append(RowError(number, header.titles[key], value))
            else:
                values[key] = value
        if "refunds" in values and "gmv" in values and values["refunds"] > values["gmv"]:
            errors.append(RowError(number, header.titles["refunds"], "退款金额大于成交金额"))
        if errors or when is None:
            parsed.errors.extend(errors)
            continue
        parsed.rows.append(Figures(number, who, when[0], when[1], values))
    return parsed


def match_rows(
    rows: Sequence[Figures], streamers: Sequence[Streamer]
) -> tuple[list[Matched], list[RowError]]:
    """Each row's streamer by platform handle or name (either column, case and width ignored).

    Unknown and ambiguous streamers are errors; so is a second row for the same streamer and
    stream (same start time, or same day when the file gives no time)."""
    by_handle: dict[str, list[Streamer]] = {}
    by_name: dict[str, list[Streamer]] = {}
    for s in streamers:
        by_handle.setdefault(fold(s.handle.lstrip("@")), []).append(s)
        by_name.setdefault(fold(s.name), []).append(s)
    matched: list[Matched] = []
    errors: list[RowError] = []
    seen: dict[tuple[int, str], int] = {}
    for row in rows:
        found = _candidates(row, by_handle, by_name)
        shown = " / ".join(row.who.values())
        if not found:
            errors.append(RowError(row.row, "主播", f"「{shown}」不是本赛事已报名的主播"))
            continue
        if len(found) > 1:
            ids = "、".join(f"报名{s.id}" for s in found)
            errors.append(
                RowError(row.row, "主播", f"「{shown}」对应多位主播（{ids}），请改用账号")
            )
            continue
        streamer = found[0]
        key = (streamer.id, row.stream_key)
        if key in seen:
            errors.append(RowError(row.row, "主播", f"与第{seen[key]}行重复（同一主播、同一场次）"))
            continue
        seen[key] = row.row
        matched.append(Matched(row, streamer))
    return matched, errors


def _candidates(
    row: Figures, by_handle: dict[str, list[Streamer]], by_name: dict[str, list[Streamer]]
) -> list[Streamer]:
    """A handle column matching one account decides; otherwise any text matching a handle or
    a name counts (a platform 昵称 is often the account name)."""
    handle = row.who.get("handle")
    exact = by_handle.get(fold(handle), []) if handle else []
    if len(exact) == 1:
        return exact
    found: dict[int, Streamer] = {}
    for text in row.who.values():
        for s in by_handle.get(fold(text), []) + by_name.get(fold(text), []):
            found[s.id] = s
    return sorted(found.values(), key=lambda s: s.id)
