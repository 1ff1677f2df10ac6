"""Statistics imports: a platform's CSV/XLSX export in, stream reports out, all or nothing.

`import_stats` is what the command line (`run_bot.py import-stats`) and a chat channel that
receives files call. It reads the file, finds the sheet and header (bot/rules/import_rows.py),
checks every row and names each problem (row, column, reason); only a file without problems is
applied. A row becomes one imported StreamReport (status confirmed) keyed by campaign, streamer
and stream (start time, or day), so importing the same file again changes nothing and a corrected
file updates the figures in place. Self-reports of the same streamer and day are superseded.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any, TypeVar

from openpyxl import load_workbook
from sqlmodel import Session, col, select

from bot.clock import SHANGHAI
from bot.rules.import_rows import (
    Figures,
    Matched,
    RowError,
    Streamer,
    aliases_for,
    find_header,
    match_rows,
    parse_rows,
)
from config.campaign import Campaign
from storage import report_totals
from storage.models import AuditLog, Filing, Registration, StreamReport

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 20_000
REPORT_FIELDS = ("gmv", "refunds", "orders", "viewers", "peak_viewers", "likes", "minutes")
SHOWN_ERRORS = 30  # in chat; the command line prints them all
ENCODINGS = ("utf-8-sig", "gb18030")  # Excel's "CSV UTF-8" has a BOM; older exports are GBK


@dataclass(frozen=True)
class Sheet:
    name: str
    rows: list[list[Any]]


@dataclass
class ImportReport:
    filename: str
    sheet: str | None = None
    rows: int = 0  # data rows read (blank and totals lines not counted)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    superseded: int = 0  # self-reports replaced by imported figures
    errors: list[RowError] = field(default_factory=list)
    problem: str | None = None  # the whole file is refused: unreadable, no fitting sheet

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.errors

    def render(self, limit: int | None = SHOWN_ERRORS) -> str:
        if self.problem:
            return f"导入失败：{self.filename}\n{self.problem}"
        where = f"（工作表「{self.sheet}」）" if self.sheet else ""
        if self.errors:
            shown = self.errors if limit is None else self.errors[:limit]
            lines = [f"第{e.row}行「{e.column}」：{e.reason}" for e in shown]
            if len(self.errors) > len(shown):
                lines.append(f"……还有{len(self.errors) - len(shown)}处问题")
            return (
                f"导入未执行：{self.filename}{where}共{self.rows}行，"
                f"发现{len(self.errors)}处问题，所有行均未导入。请修改后重新导入：\n"
                + "\n".join(lines)
            )
        return (
            f"导入完成：{self.filename}{where}共{self.rows}行，新增{self.added}条，"
            f"更新{self.updated}条，未变{self.unchanged}条；{self.superseded}条主播自报数据被平台数据取代。"
        )


class UnreadableFile(Exception):
    """The bytes are not a table we can read; the message says what to send instead."""


def read_sheets(filename: str, data: bytes) -> list[Sheet]:
    suffix = PurePath(filename).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(data)
    if suffix in (".csv", ".txt"):
        return [Sheet(PurePath(filename).stem, _read_csv(data))]
    if suffix == ".xls":
        raise UnreadableFile("不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 .csv 后再导入。")
    raise UnreadableFile("只能导入 .xlsx 或 .csv 文件（平台后台“导出数据”得到的表格）。")


def _read_xlsx(data: bytes) -> list[Sheet]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            return [Sheet(sheet.title, _sheet_rows(sheet)) for sheet in book.worksheets]
        finally:
            book.close()
    # Broken archives and XML surface as these (ParseError is a SyntaxError; defusedxml's
    # refusals are ValueErrors).
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, SyntaxError) as exc:
        raise UnreadableFile(
            "无法打开这个 XLSX 文件，请确认文件完整，或另存为 .csv 再试。"
        ) from exc


def _sheet_rows(sheet: Any) -> list[list[Any]]:
    rows = []
    for values in sheet.iter_rows(values_only=True):
        rows.append(list(values))
        if len(rows) > MAX_ROWS:
            raise UnreadableFile(f"工作表「{sheet.title}」超过{MAX_ROWS}行，请分批导入。")
    return rows


def _read_csv(data: bytes) -> list[list[Any]]:
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnreadableFile("无法识别 CSV 文件的编码，请另存为“CSV UTF-8”后再导入。")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    if len(rows) > MAX_ROWS:
        raise UnreadableFile(f"文件超过{MAX_ROWS}行，请分批导入。")
    return rows


def import_stats(
    session: Session,
    campaign: Campaign,
    filename: str,
    data: bytes,
    actor: str,
    now: datetime,
) -> ImportReport:
    """Check the whole file, then apply it in the caller's transaction, or apply nothing.

    `actor` is who imports (e.g. 'cli' or 'feishu:ou_…'), recorded in the audit log."""
    report = ImportReport(filename=PurePath(filename).name)
    if len(data) > MAX_BYTES:
        report.problem = f"文件超过{MAX_BYTES // 1024 // 1024}MB，请分批导入。"
        return report
    try:
        aliases = aliases_for(campaign.import_aliases)
        sheets = read_sheets(filename, data)
    except (UnreadableFile, ValueError) as exc:
        report.problem = str(exc)
        return report
    matched = _check(session, campaign, sheets, aliases, report)
    if matched is None or not report.ok:
        return report
    _apply(session, campaign, matched, now, report)
    session.add(
        AuditLog(
            campaign_id=campaign.id,
            actor=actor,
            action="import",
            target_type="stream_report",
            after={
                "file": report.filename,
                "sheet": report.sheet,
                "rows": report.rows,
                "added": report.added,
                "updated": report.updated,
                "superseded": report.superseded,
            },
            created_at=now,
        )
    )
    return report


def _check(
    session: Session,
    campaign: Campaign,
    sheets: Sequence[Sheet],
    aliases: dict[str, tuple[str, ...]],
    report: ImportReport,
) -> list[Matched] | None:
    """The rows of the first sheet with the needed columns, matched to streamers; errors into
    the report. None when no sheet fits."""
    lacking: list[str] = []
    for sheet in sheets:
        header, missing = find_header(sheet.rows, aliases)
        if header is None:
            lacking = lacking or missing
            continue
        parsed = parse_rows(sheet.rows, header)
        matched, unmatched = match_rows(parsed.rows, _streamers(session, campaign))
        report.sheet = sheet.name if len(sheets) > 1 else None
        report.rows = len(parsed.rows) + len({e.row for e in parsed.errors})
        report.errors = sorted([*parsed.errors, *unmatched], key=lambda e: e.row)
        return matched
    names = "、".join(f"「{s.name}」" for s in sheets) or "（空文件）"
    report.problem = (
        f"没有找到含必需列的工作表（已查看{names}）。缺少：{'；'.join(lacking)}。"
        "请导入平台导出的直播数据表。"
    )
    return None


def _streamers(session: Session, campaign: Campaign) -> list[Streamer]:
    rows = session.exec(
        select(Registration.id, Registration.name, Registration.handle).where(
            Registration.campaign_id == campaign.id, Registration.status != "rejected"
        )
    ).all()
    return [Streamer(id=i, name=n, handle=h) for i, n, h in rows]


def import_key(campaign: Campaign, matched: Matched) -> str:
    return f"{campaign.id}:{matched.streamer.id}:{matched.figures.stream_key}"


def _apply(
    session: Session,
    campaign: Campaign,
    rows: Sequence[Matched],
    now: datetime,
    report: ImportReport,
) -> None:
    keys = [import_key(campaign, m) for m in rows]
    existing = {
        r.import_key: r
        for r in session.exec(select(StreamReport).where(col(StreamReport.import_key).in_(keys)))
    }
    streamers = {m.streamer.id for m in rows}
    report_totals.lock_streamers(session, streamers)  # before the first report is written
    filings = _by_day(
        session.exec(
            select(Filing).where(
                col(Filing.registration_id).in_(streamers), Filing.status != "cancelled"
            )
        ),
        lambda f: (f.registration_id, f.start_at.astimezone(SHANGHAI).date()),
    )
    self_reports = _by_day(
        session.exec(
            select(StreamReport).where(
                col(StreamReport.registration_id).in_(streamers),
                StreamReport.source == "self",
                col(StreamReport.status).in_(("unverified", "confirmed")),
            )
        ),
        lambda r: (r.registration_id, r.stream_date),
    )
    for key, matched in zip(keys, rows, strict=True):
        figures = matched.figures
        day = (matched.streamer.id, figures.day)
        values = {k: figures.values.get(k, 0) for k in REPORT_FIELDS}
        row = existing.get(key)
        if row is None:
            session.add(
                StreamReport(
                    campaign_id=campaign.id,
                    registration_id=matched.streamer.id,
                    filing_id=_filing_of(filings.get(day, []), figures),
                    stream_date=figures.day,
                    source="import",
                    status="confirmed",
                    import_key=key,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
            report.added += 1
        elif all(_same(getattr(row, k), v) for k, v in values.items()):
            report.unchanged += 1
        else:
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
            session.add(row)
            report.updated += 1
        for superseded in self_reports.pop(day, []):
            superseded.status = "superseded"
            superseded.updated_at = now
            session.add(superseded)
            report.superseded += 1


T = TypeVar("T")


def _by_day(
    rows: Iterable[T], key: Callable[[T], tuple[int, date]]
) -> dict[tuple[int, date], list[T]]:
    grouped: dict[tuple[int, date], list[T]] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped


def _same(old: Any, new: Any) -> bool:
    return Decimal(str(old)) == Decimal(str(new))


def _filing_of(filings: Sequence[Filing], figures: Figures) -> int | None:
    """The filed stream a row is about: that day's filing nearest the row's start time, or the
    day's only filing."""
    if figures.start is not None and filings:
        start = figures.start
        return min(filings, key=lambda f: abs(f.start_at - start)).id
    return filings[0].id if len(filings) == 1 else None
