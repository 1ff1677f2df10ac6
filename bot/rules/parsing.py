"""Parsers for the numbers, phone numbers, ages, durations and start times chat users type.

Every function is pure: 'now'/'today' are parameters, nothing reads the clock, nothing does
I/O, and user text never raises; anything not understood gives None. Input is NFKC-normalised
first so the full-width digits, colons, commas and spaces of Chinese IMEs act like ASCII.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

# Anything longer is a chat message, not a value; the cap also bounds regex and Decimal work.
_MAX_LEN = 64
_MAX_VALUE = Decimal(10) ** 12
_CENT = Decimal("0.01")

# NFKC leaves traditional and financial (大写) characters alone; fold the ones we parse.
_FOLD = str.maketrans(
    {
        "兩": "两", "萬": "万", "億": "亿", "點": "点", "時": "时", "鐘": "钟", "頭": "头",
        "個": "个", "週": "周", "禮": "礼", "後": "后", "號": "号", "歲": "岁", "塊": "块",
        "間": "间", "圓": "元", "圆": "元", "壹": "一", "贰": "二", "貳": "二", "叁": "三",
        "參": "三", "肆": "四", "伍": "五", "陆": "六", "陸": "六", "柒": "七", "捌": "八",
        "玖": "九", "拾": "十", "佰": "百", "仟": "千",
    }
)  # fmt: skip


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_FOLD).strip().lower()


# ---------------------------------------------------------------------------------------------
# Numbers: Arabic and Chinese numerals with 十百千万亿 (and the k/w shorthands) as units.
# ---------------------------------------------------------------------------------------------

_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000, "k": 1000}
_BIG_UNITS = {"万": 10_000, "w": 10_000, "亿": 100_000_000}
# [0-9] rather than \d: \d also matches e.g. Arabic-Indic digits, which NFKC keeps.
_NUMBER_TOKEN = re.compile(
    r"(?P<arabic>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<digit>[零〇一二两三四五六七八九])"
    r"|(?P<unit>[十百千k万w亿])"
    r"|(?P<space>\s+)"
)


def _parse_number(s: str) -> Decimal | None:
    """Evaluate '1.2万', '12,000', '3k5', '一万二', '两千五百', '十五'...; None if malformed."""
    total = Decimal(0)  # value of completed 万/亿 groups
    section = Decimal(0)  # value below the current 万/亿
    pending: Decimal | None = None  # a number still waiting to see whether a unit follows
    pending_single = False  # pending is one digit 1-9: eligible for '一万二' = 12000
    last_small = 10_000  # 十百千 must strictly decrease within a section...
    last_big = 10**9  # ...and 亿 must come before 万
    last_unit = 0  # unit right before pending; 0 at start and after 零
    seen = False
    pos = 0
    while pos < len(s):
        match = _NUMBER_TOKEN.match(s, pos)
        if match is None:
            return None
        pos = match.end()
        kind, tok = match.lastgroup, match.group()
        if kind == "space":
            continue
        first, seen = not seen, True
        if kind in ("arabic", "digit"):
            if pending is not None:
                return None  # '1 2', '二五': numbers must be joined by a unit
            if kind == "digit" and _DIGITS[tok] == 0:
                last_unit = 0  # '一千零五' = 1005: after 零 a digit is plain units
                continue
            pending = Decimal(tok.replace(",", "")) if kind == "arabic" else Decimal(_DIGITS[tok])
            pending_single = kind == "digit" or re.fullmatch("[1-9]", tok) is not None
        elif tok in _SMALL_UNITS:
            unit = _SMALL_UNITS[tok]
            if unit >= last_small:
                return None
            if pending is None:
                if tok == "k" or not first:
                    return None  # 'k' alone, '千百'
                pending = Decimal(1)  # '十五', '百万': a leading Chinese unit implies 一
            section += pending * unit
            pending, last_small, last_unit = None, unit, unit
        else:
            unit = _BIG_UNITS[tok]
            if unit >= last_big:
                return None
            if pending is not None:
                section += pending
            if section == 0:
                return None  # a bare '万'/'w' (or '0万') is not a number anyone types
            total += section * unit
            section, pending = Decimal(0), None
            last_small, last_big, last_unit = 10_000, unit, unit
    if not seen:
        return None
    if pending is not None:
        if pending_single and last_unit >= 10:
            # Colloquial elision of the next unit down: 一万二 = 12000, 两千五 = 2500, 3k5 = 3500.
            pending *= last_unit // 10
        section += pending
    return total + section


def _to_int(s: str) -> int | None:
    value = _parse_number(s)
    if value is None or value != value.to_integral_value():
        return None
    return int(value)


_AMOUNT_PREFIX = re.compile(r"^(?:¥|rmb|人民币)\s*")
_AMOUNT_SUFFIX = re.compile(r"\s*(?:元整|块钱|人民币|元|块|rmb)$")
_COUNT_SUFFIX = re.compile(r"\s*(?:粉丝|人次|人|个|粉|单|次|赞|位|名)$")


def parse_amount(text: str) -> Decimal | None:
    """'1.2万'->12000, '1w'->10000, '12,000'->12000, '¥88.5'->88.5, '一万'->10000, '2.5亿'.

    Result is quantised to 2 decimals (half-up); negative, empty, non-numeric or >1e12 -> None.
    """
    s = _normalise(text)
    if len(s) > _MAX_LEN:
        return None
    s = _AMOUNT_SUFFIX.sub("", _AMOUNT_PREFIX.sub("", s, count=1), count=1)
    value = _parse_number(s)
    if value is None or value > _MAX_VALUE:
        return None
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def parse_count(text: str) -> int | None:
    """Whole counts: '1.2万'->12000, '8000', '2w', '3k', '500人'; fractional results -> None."""
    s = _normalise(text)
    if len(s) > _MAX_LEN:
        return None
    value = _to_int(_COUNT_SUFFIX.sub("", s, count=1))
    if value is None or value > _MAX_VALUE:
        return None
    return value


# ---------------------------------------------------------------------------------------------
# Mobile numbers
# ---------------------------------------------------------------------------------------------

_MOBILE_SEPARATORS = re.compile(r"[\s\-–—()]+")
_MOBILE = re.compile(r"(?:\+?86|0086)?(1[3-9][0-9]{9})")


def parse_mobile(text: str) -> str | None:
    """Mainland mobile (1[3-9] + 9 digits), allowing spaces/dashes and +86/86/0086; -> 11 digits."""
    s = _normalise(text)
    if len(s) > _MAX_LEN:
        return None
    match = _MOBILE.fullmatch(_MOBILE_SEPARATORS.sub("", s))
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# Age
# ---------------------------------------------------------------------------------------------

_AGE = re.compile(r"(?P<n>[0-9]{1,3}|[零〇一二两三四五六七八九十百]{1,5})\s*(?:周岁|岁)?")
_BIRTH_DATES = (
    re.compile(
        r"(?P<y>[0-9]{4})\s*(?P<sep>[-/.])\s*(?P<m>[0-9]{1,2})\s*(?P=sep)\s*(?P<d>[0-9]{1,2})"
    ),
    re.compile(r"(?P<y>[0-9]{4})\s*年\s*(?P<m>[0-9]{1,2})\s*月\s*(?P<d>[0-9]{1,2})\s*[日号]?"),
    re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})"),
)


def parse_age(text: str, today: date) -> int | None:
    """An age ('25', '25岁', '二十五岁') or a birth date ('2000-05-01', '2000/5/1', '2000.5.1',
    '2000年5月1日', '20000501') as full years on `today`. Result always in 1..120, else None.

    A 29 February birthday counts as reached on 1 March in non-leap years.
    """
    s = _normalise(text)
    if len(s) > _MAX_LEN:
        return None
    match = _AGE.fullmatch(s)
    if match:
        age = _to_int(match["n"])
        return age if age is not None and 1 <= age <= 120 else None
    for pattern in _BIRTH_DATES:
        match = pattern.fullmatch(s)
        if match is None:
            continue
        try:
            born = date(int(match["y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            return None
        if born > today:
            return None
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        return age if 1 <= age <= 120 else None
    return None


# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------

_NUM = r"[0-9]+(?:\.[0-9]+)?|[零〇一二两三四五六七八九十百千]+"
_DURATION = re.compile(
    rf"(?:(?P<h>{_NUM})?个?(?P<half>半)?个?(?P<h_unit>小时|钟头|钟|hours|hour|hrs|hr|h)"
    rf"(?P<half_after>半)?)?"
    rf"(?:(?P<m>{_NUM})(?P<m_unit>分钟|分|minutes|minute|mins|min|m)?)?"
)
_DURATION_CLOCK = re.compile(r"(?P<h>[0-9]{1,2}):(?P<m>[0-5][0-9])")


def parse_duration_minutes(text: str) -> int | None:
    """'2小时', '90分钟', '1.5h', '2h30m', '1小时30分', '两小时', '半小时', '一个半小时', '90min',
    '1:30' -> minutes; a bare number is minutes. Non-whole minutes, 0 or > 24h -> None.
    """
    s = _normalise(text)
    if len(s) > _MAX_LEN or re.search(r"[0-9]\s+[0-9]", s):
        return None  # '1 30' is not 130 minutes
    s = re.sub(r"\s+", "", s)
    clock = _DURATION_CLOCK.fullmatch(s)
    if clock:
        minutes: Decimal | None = Decimal(int(clock["h"]) * 60 + int(clock["m"]))
    else:
        minutes = _duration_from_units(s)
    if minutes is None or minutes != minutes.to_integral_value() or not 0 < minutes <= 24 * 60:
        return None
    return int(minutes)


def _duration_from_units(s: str) -> Decimal | None:
    match = _DURATION.fullmatch(s)
    if match is None or (match["h_unit"] is None and match["m"] is None):
        return None
    hours = Decimal(0)
    if match["h_unit"]:
        half = match["half"] or match["half_after"]
        if match["h"] is None and not half:
            return None  # '小时' alone
        if match["half"] and match["half_after"]:
            return None
        if match["h"] is not None:
            parsed = _parse_number(match["h"])
            if parsed is None:
                return None
            hours = parsed
        if half:
            if hours != hours.to_integral_value() or (match["half_after"] and match["m"]):
                return None  # '1.5个半小时', '1小时半30分'
            hours += Decimal("0.5")
    minutes = Decimal(0)
    if match["m"] is not None:
        parsed = _parse_number(match["m"])
        if parsed is None:
            return None
        minutes = parsed
        # With an hour part the minutes are a clock-style remainder: '1h90m' is a typo.
        if match["h_unit"] and (minutes >= 60 or hours != hours.to_integral_value()):
            return None
    return hours * 60 + minutes


# ---------------------------------------------------------------------------------------------
# Date and time
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ambiguous:
    """The text names a day but the time is missing or could be morning or evening."""

    question: str  # short Chinese question telling the user what to type
    options: tuple[datetime, ...]  # candidate readings; empty when the time is missing


class _Reject(Exception):
    """Internal: the text matched a date/time shape but names an impossible one."""


_MD = r"[0-9]{1,2}|[一二三四五六七八九十]{1,3}"
_HM = r"[0-9]{1,2}|[零〇一二两三四五六七八九十]{1,3}"
_REL_DAY = re.compile(r"大后天|后天|明天|明日|明儿|今天|今日|今儿|[今明](?=[早晚晨])")
_REL_OFFSETS = {
    "大后天": 3, "后天": 2, "明天": 1, "明日": 1, "明儿": 1, "明": 1,
    "今天": 0, "今日": 0, "今儿": 0, "今": 0,
}  # fmt: skip
_WD = r"[一二三四五六日天1-7]"
_WEEKDAY = re.compile(rf"(?P<prefix>下下个?|下个?|这个?|本)?(?:周|星期|礼拜)(?P<wd>{_WD})")
_WEEKDAY_NOTE = re.compile(rf"\s*[(\[]?\s*(?:周|星期|礼拜)(?P<wd>{_WD})\s*[)\]]?")
_WEEKDAY_INDEX = (
    {c: i for i, c in enumerate("一二三四五六日")} | {"天": 6} | {str(i + 1): i for i in range(7)}
)
_YMD_CN = re.compile(
    rf"(?P<y>[0-9]{{4}})\s*年\s*(?P<m>{_MD})\s*月\s*(?P<d>{_MD})\s*(?:[日号]|(?![0-9]))"
)
_YMD_NUM = re.compile(
    r"(?P<y>[0-9]{4})(?P<sep>[-/.])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})(?![0-9])t?"
)
_MD_CN = re.compile(rf"(?P<m>{_MD})\s*月\s*(?P<d>{_MD})\s*(?:[日号]|(?![0-9]))")
_MD_NUM = re.compile(r"(?P<m>[0-9]{1,2})(?P<sep>[-/.])(?P<d>[0-9]{1,2})(?![0-9])")
_DAY_ONLY = re.compile(rf"(?P<d>{_MD})\s*[日号]")
_PERIOD = re.compile(
    r"凌晨|早上|早晨|清晨|上午|中午|下午|傍晚|晚上|夜里|夜间|夜晚|半夜|深夜|午夜|早|晨|晚|夜"
)
_TIME_COLON = re.compile(r"(?P<h>[0-9]{1,2})\s*:\s*(?P<m>[0-9]{2})(?::[0-9]{2})?(?![0-9])")
_TIME_DIAN = re.compile(
    rf"(?P<h>{_HM})\s*[点时](?:\s*(?P<frac>半|一刻|三刻|整)|\s*(?P<m>{_HM})(?:\s*分)?)?\s*钟?"
)
_TIME_BARE_AMPM = re.compile(r"(?P<h>[0-9]{1,2})(?=\s*(?:am|pm|a\.m\.|p\.m\.))")
_AMPM = re.compile(r"\s*(?P<ap>am|pm|a\.m\.|p\.m\.)")
_TAIL = re.compile(r"\s*(?:开播|开始|直播|开|播)?\s*[。.!~]*\s*")
_FRACTION_MINUTES = {"半": 30, "一刻": 15, "三刻": 45, "整": 0}
_PERIOD_GROUP = {
    "凌晨": "dawn", "中午": "noon", "半夜": "late", "深夜": "late", "午夜": "late",
    "am": "morning", "a.m.": "morning", "pm": "afternoon", "p.m.": "afternoon",
    **dict.fromkeys(("早上", "早晨", "清晨", "上午", "早", "晨"), "morning"),
    **dict.fromkeys(("下午", "傍晚"), "afternoon"),
    **dict.fromkeys(("晚上", "夜里", "夜间", "夜晚", "晚", "夜"), "evening"),
}  # fmt: skip
_PERIOD_EXAMPLE = {
    "dawn": "凌晨1点", "morning": "上午10点", "noon": "中午12点",
    "afternoon": "下午3点", "evening": "晚上8点", "late": "半夜12点",
}  # fmt: skip


@dataclass(frozen=True)
class _Day:
    day: date
    flexible: bool  # a bare '周六' that means next week once today's time has passed


def _skip_spaces(s: str, pos: int) -> int:
    while pos < len(s) and s[pos].isspace():
        pos += 1
    return pos


def _int_or_reject(s: str) -> int:
    value = int(s) if s.isascii() and s.isdigit() else _to_int(s)
    if value is None:
        raise _Reject
    return value


def _make_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except (ValueError, OverflowError):
        raise _Reject from None


def _add_days(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        raise _Reject from None


def _month_day(month: int, day: int, today: date) -> date:
    """This year's date unless it lies more than 180 days back, then next year's."""
    try:
        reference = date(today.year, month, day)
    except ValueError:
        reference = _make_date(today.year, month, 28)  # 29 Feb decides its year like 28 Feb
    year = today.year + 1 if (today - reference).days > 180 else today.year
    return _make_date(year, month, day)


def _match_date(s: str, today: date) -> tuple[int, _Day] | None:
    """Match a day expression at the start of s; None when there is none."""
    if match := _REL_DAY.match(s):
        return match.end(), _Day(_add_days(today, _REL_OFFSETS[match.group()]), False)
    if match := _WEEKDAY.match(s):
        weekday, prefix = _WEEKDAY_INDEX[match["wd"]], match["prefix"]
        if prefix is None:
            ahead = (weekday - today.weekday()) % 7
            return match.end(), _Day(_add_days(today, ahead), True)
        weeks = 2 if prefix.startswith("下下") else 1 if prefix.startswith("下") else 0
        monday = _add_days(today, -today.weekday())  # Chinese calendar weeks start on Monday
        return match.end(), _Day(_add_days(monday, 7 * weeks + weekday), False)
    end: int
    if (match := _YMD_CN.match(s)) or (match := _YMD_NUM.match(s)):
        year, month, day = (_int_or_reject(match[k]) for k in ("y", "m", "d"))
        result, end = _make_date(year, month, day), match.end()
    elif (match := _MD_CN.match(s)) or (match := _MD_NUM.match(s)):
        month, day = _int_or_reject(match["m"]), _int_or_reject(match["d"])
        if not 1 <= month <= 12:
            raise _Reject
        result, end = _month_day(month, day, today), match.end()
    elif match := _DAY_ONLY.match(s):
        # '25号': this month if still ahead (or today), otherwise next month.
        day = _int_or_reject(match["d"])
        month_start = today.replace(day=1)
        if day < today.day:
            month_start = _add_days(month_start, 32).replace(day=1)
        result, end = _make_date(month_start.year, month_start.month, day), match.end()
    else:
        return None
    # Dates copied from a calendar often carry the weekday: '11月25日(周一)'. It must agree.
    if note := _WEEKDAY_NOTE.match(s, end):
        if _WEEKDAY_INDEX[note["wd"]] != result.weekday():
            raise _Reject
        end = note.end()
    return end, _Day(result, False)


def _match_time(s: str, pos: int) -> tuple[int, int, int, bool] | None:
    """(end, hour, minute, explicit_24h) for a clock time at pos, or None."""
    if match := _TIME_COLON.match(s, pos):
        minute = int(match["m"])
    elif match := _TIME_DIAN.match(s, pos):
        if match["frac"]:
            minute = _FRACTION_MINUTES[match["frac"]]
        else:
            minute = _int_or_reject(match["m"]) if match["m"] else 0
    elif match := _TIME_BARE_AMPM.match(s, pos):
        minute = 0
    else:
        return None
    hour_text = match["h"]
    hour = _int_or_reject(hour_text)
    if hour > 23 or minute > 59:
        raise _Reject
    # Zero-padded HH:MM ('08:00', '10:00') and '08点' are 24-hour evidence; '8:00' and '10点'
    # are as ambiguous as '8点'.
    explicit = len(hour_text) == 2 and (hour_text[0] == "0" or match.re is _TIME_COLON)
    return match.end(), hour, minute, explicit


def _apply_period(period: str, hour: int) -> tuple[int, int] | None:
    """(24h hour, day offset) for an hour said with a period word, or None if contradictory."""
    group = _PERIOD_GROUP[period]
    if group == "dawn":
        return (0, 0) if hour == 12 else (hour, 0) if hour <= 6 else None
    if group == "morning":
        if hour == 12:
            return (0, 0) if period in ("am", "a.m.") else (12, 0)
        return (hour, 0) if hour <= 11 else None
    if group == "noon":
        return (hour + 12, 0) if 1 <= hour <= 3 else (hour, 0) if 11 <= hour <= 15 else None
    if group == "afternoon":
        return (hour + 12, 0) if 1 <= hour <= 11 else (hour, 0) if hour >= 12 else None
    # '晚上12点' / '晚上1点' / '半夜2点' are after midnight, i.e. on the next calendar day.
    if group == "evening":
        if hour == 12 or hour <= 4:
            return hour % 12, 1
        return (hour + 12, 0) if hour <= 11 else (hour, 0) if hour >= 17 else None
    if hour == 12 or hour <= 5:
        return hour % 12, 1
    return (hour + 12, 0) if hour in (10, 11) else (hour, 0) if hour >= 22 else None


def _label(hour: int) -> str:
    if hour < 6:
        return "凌晨"
    if hour < 12:
        return "上午"
    if hour == 12:
        return "中午"
    return "下午" if hour < 18 else "晚上"


def _clock(moment: datetime) -> str:
    return f"{_label(moment.hour)}{moment.hour}:{moment.minute:02d}"


def _md(day: date) -> str:
    return f"{day.month}月{day.day}日"


def _ambiguous_time(options: tuple[datetime, ...]) -> Ambiguous:
    first, second = options
    if first.date() == second.date():
        question = f"{_md(first.date())}是{_clock(first)}还是{_clock(second)}？"
    else:
        question = f"是{_md(first.date())}{_clock(first)}还是{_md(second.date())}{_clock(second)}？"
    hour12 = second.hour - 12 if second.hour > 12 else second.hour
    minute = f"{second.minute}分" if second.minute else ""
    example = f"{_md(second.date())}{_label(second.hour)}{hour12}点{minute}"
    return Ambiguous(f"{question}请回复带上午/下午/晚上的时间，如「{example}」。", options)


def parse_datetime(text: str, now: datetime) -> datetime | Ambiguous | None:
    """Parse a stream start time relative to the aware datetime `now`.

    Returns an aware Asia/Shanghai datetime with seconds=0, an `Ambiguous` when the day is
    known but the time is missing (options=()) or could be a.m. or p.m. (two options, a.m.
    reading first), or None. Choices for the unclear cases:

    - '周六' (no 这/下): the first Saturday from today on whose resulting time is still ahead of
      `now`, so on a Saturday it is today if the time has not passed yet, else next week. Each
      a.m./p.m. reading is resolved on its own and the two options may fall on different days.
      '这周六'/'本周六' is this Monday-based week's Saturday (maybe past), '下周六' next week's,
      '下下周六' the week after.
    - 'M-D' / 'M月D日' without a year: this year's date unless it is more than 180 days ago,
      then next year's. Past dates are returned as-is; callers refuse them. 'D号': this month
      if not yet past, else next month. A date with no time (even '明天晚上') asks for the time.
    - 1-11 o'clock with no period word is ambiguous ('8点', '10点', '8:00') unless written as
      24-hour: two-digit HH:MM ('08:00', '10:00') or '08点'. '0点', '12点', 13-23 are 24-hour.
    - '晚上12点', '晚上1-4点' and '半夜1-5点' are after midnight (next calendar day);
      '凌晨12点' is 00:00 of that day.
    - A time with no day means today, even if already past.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    s = _normalise(text)
    if not s or len(s) > _MAX_LEN:
        return None
    try:
        return _parse_datetime(s, now.astimezone(SHANGHAI))
    except _Reject:
        return None


def _parse_datetime(s: str, now: datetime) -> datetime | Ambiguous | None:
    today = now.date()
    pos = 0
    day: _Day | None = None
    if found := _match_date(s, today):
        pos, day = found
    pos = _skip_spaces(s, pos)
    period: str | None = None
    if match := _PERIOD.match(s, pos):
        period, pos = match.group(), _skip_spaces(s, match.end())
    time = _match_time(s, pos)
    if time is not None:
        pos = time[0]
        if match := _AMPM.match(s, pos):
            if period is not None:
                raise _Reject  # '下午3pm'
            period, pos = match["ap"], match.end()
    if not _TAIL.fullmatch(s, pos):
        return None
    if time is None:
        if day is None:
            return None
        md = _md(day.day)
        example = _PERIOD_EXAMPLE[_PERIOD_GROUP[period]] if period else "晚上8点"
        return Ambiguous(f"{md}几点开播？请回复具体时间，如「{md}{example}」。", ())
    _, hour, minute, explicit = time
    if period is not None:
        mapped = _apply_period(period, hour)
        if mapped is None:
            raise _Reject
        readings = [mapped]
    elif 1 <= hour <= 11 and not explicit:
        readings = [(hour, 0), (hour + 12, 0)]
    else:
        readings = [(hour, 0)]
    base = day or _Day(today, False)
    options = tuple(_at(base, h, minute, offset, now) for h, offset in readings)
    if len(options) == 1:
        return options[0]
    if day is None:
        # `8点` at 10:00 offers tomorrow morning and tonight, never this morning, already past.
        options = tuple(o if o > now else o + timedelta(days=1) for o in options)
    return _ambiguous_time(options)


def _at(base: _Day, hour: int, minute: int, offset: int, now: datetime) -> datetime:
    day = _add_days(base.day, offset)
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)
    if base.flexible and base.day == now.date() and moment <= now:
        day = _add_days(day, 7)
        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)
    return moment
