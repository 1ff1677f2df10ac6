"""bot.rules.parsing: numbers, mobiles, ages, durations and start times as chat users type them."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.parsing import (
    Ambiguous,
    parse_age,
    parse_amount,
    parse_count,
    parse_datetime,
    parse_duration_minutes,
    parse_mobile,
)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 11, 20, 10, 0, 30, tzinfo=SH)  # a Wednesday morning
TODAY = date(2024, 11, 20)
FULLWIDTH = str.maketrans({**{chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}, " ": "\u3000"})


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def chinese(n: int) -> str:
    """Standard Chinese reading of 0 <= n < 10**8: an oracle independent of the parser."""
    digits = "零一二三四五六七八九"

    def section(x: int) -> str:
        out, gap = "", False
        for place, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
            d = x // place % 10
            if d == 0:
                gap = bool(out)
                continue
            out += ("零" if gap else "") + digits[d] + unit
            gap = False
        return out

    if n == 0:
        return "零"
    high, low = divmod(n, 10_000)
    text = section(high) + "万" if high else ""
    if low:
        text += ("零" if high and low < 1000 else "") + section(low)
    return text[1:] if text.startswith("一十") else text


def test_chinese_oracle() -> None:
    assert [chinese(n) for n in (10, 15, 110, 1005, 10010, 150000, 20100)] == [
        "十", "十五", "一百一十", "一千零五", "一万零一十", "十五万", "二万零一百",
    ]  # fmt: skip


# --- parse_amount / parse_count ----------------------------------------------------------------

AMOUNTS = [
    ("1.2万", "12000"), ("1w", "10000"), ("1W", "10000"), ("12,000", "12000"),
    ("12，000", "12000"), ("3000元", "3000"), ("3千", "3000"), ("1.5k", "1500"), ("1.5K", "1500"),
    ("0", "0"), ("500块", "500"), ("¥88.5", "88.5"), ("￥88.5", "88.5"), ("一万", "10000"),
    ("2.5亿", "250000000"), ("  ３０００  ", "3000"), ("1.2万元", "12000"), ("88.555", "88.56"),
    ("0.004", "0"), ("1,234,567.89", "1234567.89"), ("一万二", "12000"), ("两千五", "2500"),
    ("三千", "3000"), ("十五", "15"), ("一千零五", "1005"), ("百万", "1000000"), ("3k5", "3500"),
    ("1亿2000万", "120000000"), ("500块钱", "500"), ("1000000000000", "1000000000000"),
    ("壹万", "10000"), ("1萬", "10000"), ("1 万", "10000"), ("rmb 50", "50"),
]  # fmt: skip
BAD_AMOUNTS = [
    "", "   ", "-5", "-1.2万", "abc", "1000000000001", "2万亿", "1,2", "12,00", "1 2", "万", "w",
    "k", "1.2.3", "五二", "1万万", "千百", "1e5", ".5", "5.", "约3000", "3000元左右", "3块5",
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), AMOUNTS)
def test_parse_amount(text: str, expected: str) -> None:
    result = parse_amount(text)
    assert result == Decimal(expected)
    assert result is not None and result.as_tuple().exponent == -2  # always 2 decimals


@pytest.mark.parametrize("text", BAD_AMOUNTS)
def test_parse_amount_rejects(text: str) -> None:
    assert parse_amount(text) is None


COUNTS = [
    ("1.2万", 12000), ("8000", 8000), ("2w", 20000), ("3k", 3000), ("500人", 500), ("3个", 3),
    ("2万粉", 20000), ("1.5万粉丝", 15000), ("30单", 30), ("5次", 5), ("1w赞", 10000),
    ("12,000", 12000), ("0", 0), ("一万", 10000), ("两千", 2000), ("１２ 万", 120000),
]  # fmt: skip
BAD_COUNTS = ["1.5", "1.23456万", "-3", "", "人", "3000元", "abc", "2万亿", "1.5人"]


@pytest.mark.parametrize(("text", "expected"), COUNTS)
def test_parse_count(text: str, expected: int) -> None:
    result = parse_count(text)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("text", BAD_COUNTS)
def test_parse_count_rejects(text: str) -> None:
    assert parse_count(text) is None


def number_texts(n: int) -> list[str]:
    texts = [str(n), f"{n:,}", f"{n:,}".replace(",", "，"), str(n).translate(FULLWIDTH)]
    if n and n % 10_000 == 0:
        texts += [f"{n // 10_000}万", f"{n // 10_000}w", f"{n // 10_000}W"]
    if n and n % 1000 == 0:
        texts += [f"{n / 10_000:g}万"] if n < 10**10 else []
    if n < 10**8:
        texts.append(chinese(n))
    return texts


@given(st.integers(0, 10**12))
def test_amount_and_count_round_trip_integers(n: int) -> None:
    for text in number_texts(n):
        assert parse_count(text) == n, text
        assert parse_amount(text) == n, text
        assert parse_amount(f"{text}元") == n, text
        assert parse_count(f"  {text}人 ") == n, text


@given(st.integers(0, 10**14))
def test_amount_round_trip_cents(cents: int) -> None:
    text = f"{cents // 100}.{cents % 100:02d}"
    expected = Decimal(cents) / 100
    assert parse_amount(text) == (expected if expected <= 10**12 else None)
    assert parse_amount(f"¥{cents // 100:,}.{cents % 100:02d}") == (
        expected if expected <= 10**12 else None
    )


@given(st.text())
def test_numbers_never_raise(text: str) -> None:
    amount, count = parse_amount(text), parse_count(text)
    assert amount is None or (0 <= amount <= 10**12 and amount.as_tuple().exponent == -2)
    assert count is None or 0 <= count <= 10**12


@given(st.text(alphabet="0123456789.,， 零一二两三四五六七八九十百千万亿kwKW元块¥人个-"))
def test_numbers_never_raise_on_numberish_text(text: str) -> None:
    parse_amount(text)
    parse_count(text)


# --- parse_mobile ------------------------------------------------------------------------------

MOBILES = [
    ("13812345678", "13812345678"), ("138 1234 5678", "13812345678"),
    ("138-1234-5678", "13812345678"), ("+86 138 1234 5678", "13812345678"),
    ("+8613812345678", "13812345678"), ("8613812345678", "13812345678"),
    ("0086 13812345678", "13812345678"), ("(+86) 199-0000-0000", "19900000000"),
    (" １３８１２３４５６７８ ", "13812345678"), ("+86-15012345678", "15012345678"),
]  # fmt: skip
BAD_MOBILES = [
    "", "1381234567", "138123456789", "12812345678", "23812345678", "10012345678",
    "+1 13812345678", "138a2345678", "phone", "+86", "010-12345678", "+8612812345678",
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), MOBILES)
def test_parse_mobile(text: str, expected: str) -> None:
    assert parse_mobile(text) == expected


@pytest.mark.parametrize("text", BAD_MOBILES)
def test_parse_mobile_rejects(text: str) -> None:
    assert parse_mobile(text) is None


@given(
    second=st.sampled_from("3456789"),
    rest=st.text(alphabet="0123456789", min_size=9, max_size=9),
    separators=st.lists(st.sampled_from(["", "", " ", "-"]), min_size=10, max_size=10),
    prefix=st.sampled_from(["", "+86", "86", "0086", "+86 ", "+86-", "(+86) ", "0086 "]),
    fullwidth=st.booleans(),
)
def test_mobile_round_trip(
    second: str, rest: str, separators: list[str], prefix: str, fullwidth: bool
) -> None:
    digits = "1" + second + rest
    text = prefix + digits[0] + "".join(s + d for s, d in zip(separators, digits[1:], strict=True))
    if fullwidth:
        text = text.translate(FULLWIDTH)
    assert parse_mobile(text) == digits


@given(st.text())
def test_mobile_never_raises(text: str) -> None:
    result = parse_mobile(text)
    assert result is None or (len(result) == 11 and result.isdigit())


# --- parse_age ---------------------------------------------------------------------------------

AGES = [
    ("25", 25), ("25岁", 25), (" 25 岁 ", 25), ("25周岁", 25), ("二十五岁", 25), ("二十五", 25),
    ("十八", 18), ("１２０", 120), ("1", 1), ("2000-05-01", 24), ("2000/5/1", 24),
    ("2000.5.1", 24), ("2000年5月1日", 24), ("2000年5月1号", 24), ("20000501", 24),
    ("2000-11-20", 24), ("2000-11-21", 23), ("2000-11-19", 24), ("２０００－１１－２０", 24),
    ("1904-11-20", 120), ("2023-11-20", 1),
]  # fmt: skip
BAD_AGES = [
    "", "0", "121", "-5", "25.5", "abc", "2000", "2000年", "2000-05", "2030-01-01",
    "2024-11-21", "2024-11-20", "2000-02-30", "2001-02-29", "2000-13-01", "1903-11-20",
    "2000-5/1", "200005011", "二十五五", "25岁了吗",
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), AGES)
def test_parse_age(text: str, expected: int) -> None:
    assert parse_age(text, TODAY) == expected


@pytest.mark.parametrize("text", BAD_AGES)
def test_parse_age_rejects(text: str) -> None:
    assert parse_age(text, TODAY) is None


@pytest.mark.parametrize(
    ("today", "expected"),
    [(date(2025, 2, 28), 24), (date(2025, 3, 1), 25), (date(2024, 2, 29), 24)],
)
def test_parse_age_leap_day_birthday(today: date, expected: int) -> None:
    assert parse_age("2000-02-29", today) == expected


def expected_age(born: date, today: date) -> int | None:
    if born > today:
        return None
    try:
        birthday = born.replace(year=today.year)
    except ValueError:  # 29 Feb in a non-leap year: reached on 1 March
        birthday = date(today.year, 3, 1)
    years = today.year - born.year - (birthday > today)
    return years if 1 <= years <= 120 else None


@given(
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    days_back=st.integers(-400, 122 * 366),
    style=st.integers(0, 4),
)
def test_age_from_birth_date(today: date, days_back: int, style: int) -> None:
    born = today - timedelta(days=days_back)
    y, m, d = born.year, born.month, born.day
    text = [
        f"{born:%Y-%m-%d}",
        f"{y}/{m}/{d}",
        f"{y}.{m}.{d}",
        f"{y}年{m}月{d}日",
        f"{born:%Y%m%d}",
    ]
    assert parse_age(text[style], today) == expected_age(born, today)


@given(st.text(), st.dates())
def test_age_never_raises(text: str, today: date) -> None:
    result = parse_age(text, today)
    assert result is None or 1 <= result <= 120


# --- parse_duration_minutes --------------------------------------------------------------------

DURATIONS = [
    ("2小时", 120), ("90分钟", 90), ("1.5h", 90), ("1.5小时", 90), ("2h30m", 150),
    ("1小时30分", 90), ("两小时", 120), ("半小时", 30), ("一个半小时", 90), ("90min", 90),
    ("120", 120), ("2个小时", 120), ("两个钟头", 120), ("1小时半", 90), ("半个小时", 30),
    ("2 hours", 120), ("45 mins", 45), ("2h30", 150), ("1:30", 90), ("２小时", 120),
    ("三十分钟", 30), ("九十分钟", 90), ("一小时三十分钟", 90), ("24小时", 1440), ("1H", 60),
    ("0.25h", 15), ("两个半小时", 150), ("1 小时 30 分钟", 90), ("1440", 1440),
]  # fmt: skip
BAD_DURATIONS = [
    "", "0", "0小时", "25小时", "1441", "小时", "半", "1.5", "1.33h", "1 30", "abc", "-2小时",
    "1小时90分", "1.5h30m", "1.5个半小时", "1小时半30分", "两小时两小时", "2天",
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), DURATIONS)
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration_minutes(text) == expected


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration_minutes(text) is None


@given(st.integers(1, 24))
def test_duration_hours_round_trip(n: int) -> None:
    for text in (f"{n}小时", f"{n}h", f"{n} 个小时", chinese(n) + "小时"):
        assert parse_duration_minutes(text) == 60 * n, text


@given(st.integers(1, 1440))
def test_duration_minutes_round_trip(n: int) -> None:
    for text in (f"{n}分钟", f"{n}min", str(n), chinese(n) + "分钟"):
        assert parse_duration_minutes(text) == n, text


@given(st.text())
def test_duration_never_raises(text: str) -> None:
    result = parse_duration_minutes(text)
    assert result is None or 1 <= result <= 1440


# --- parse_datetime ----------------------------------------------------------------------------

DATETIMES = [
    ("明天 20:00", sh(2024, 11, 21, 20, 0)),
    ("后天晚上8点", sh(2024, 11, 22, 20, 0)),
    ("周六 19:30", sh(2024, 11, 23, 19, 30)),
    ("星期六19:30", sh(2024, 11, 23, 19, 30)),
    ("礼拜六 19:30", sh(2024, 11, 23, 19, 30)),
    ("礼拜天晚上8点", sh(2024, 11, 24, 20, 0)),
    ("周日 20:00", sh(2024, 11, 24, 20, 0)),
    ("周二 20:00", sh(2024, 11, 26, 20, 0)),  # bare weekday already past this week: next one
    ("周三 20:00", sh(2024, 11, 20, 20, 0)),  # today, time still ahead
    ("周三 09:00", sh(2024, 11, 27, 9, 0)),  # today, but that time has passed
    ("这周二 20:00", sh(2024, 11, 19, 20, 0)),  # explicit this-week: returned even if past
    ("下周三 20:00", sh(2024, 11, 27, 20, 0)),
    ("下周六 20:00", sh(2024, 11, 30, 20, 0)),
    ("下周日 20:00", sh(2024, 12, 1, 20, 0)),
    ("下个星期一 20:00", sh(2024, 11, 25, 20, 0)),
    ("下下周三 20:00", sh(2024, 12, 4, 20, 0)),
    ("11-25 19:30", sh(2024, 11, 25, 19, 30)),
    ("11月25日 19:30", sh(2024, 11, 25, 19, 30)),
    ("11月25号19:30", sh(2024, 11, 25, 19, 30)),
    ("11/25 19:30", sh(2024, 11, 25, 19, 30)),
    ("11.25 19:30", sh(2024, 11, 25, 19, 30)),
    ("十一月二十五日晚上八点", sh(2024, 11, 25, 20, 0)),
    ("11月25日(周一) 20:00", sh(2024, 11, 25, 20, 0)),
    ("2024-11-25 20:00", sh(2024, 11, 25, 20, 0)),
    ("2024/11/25 20:00", sh(2024, 11, 25, 20, 0)),
    ("2024-11-25T20:00", sh(2024, 11, 25, 20, 0)),
    ("2024年11月25日20点", sh(2024, 11, 25, 20, 0)),
    ("2025年1月3日 晚上7点半", sh(2025, 1, 3, 19, 30)),
    ("今晚8点半", sh(2024, 11, 20, 20, 30)),
    ("今晚上8点", sh(2024, 11, 20, 20, 0)),
    ("今天下午3点", sh(2024, 11, 20, 15, 0)),
    ("明早9点", sh(2024, 11, 21, 9, 0)),
    ("明天早上9点", sh(2024, 11, 21, 9, 0)),
    ("明天中午12点", sh(2024, 11, 21, 12, 0)),
    ("明天中午1点", sh(2024, 11, 21, 13, 0)),
    ("明天凌晨2点", sh(2024, 11, 21, 2, 0)),
    ("明天晚上12点", sh(2024, 11, 22, 0, 0)),  # midnight at the end of tomorrow
    ("今晚1点", sh(2024, 11, 21, 1, 0)),  # after midnight
    ("20:00", sh(2024, 11, 20, 20, 0)),
    ("２０：００", sh(2024, 11, 20, 20, 0)),
    ("09:00", sh(2024, 11, 20, 9, 0)),  # today even if already past
    ("10:00", sh(2024, 11, 20, 10, 0)),  # zero-padded HH:MM reads as 24-hour
    ("08点", sh(2024, 11, 20, 8, 0)),
    ("20点", sh(2024, 11, 20, 20, 0)),
    ("12点", sh(2024, 11, 20, 12, 0)),
    ("0点", sh(2024, 11, 20, 0, 0)),
    ("晚上八点", sh(2024, 11, 20, 20, 0)),
    ("晚上8点15分", sh(2024, 11, 20, 20, 15)),
    ("晚上八点一刻", sh(2024, 11, 20, 20, 15)),
    ("下午3点三刻", sh(2024, 11, 20, 15, 45)),
    ("下午三点零五分", sh(2024, 11, 20, 15, 5)),
    ("上午10点整", sh(2024, 11, 20, 10, 0)),
    ("下午15点", sh(2024, 11, 20, 15, 0)),
    ("8pm", sh(2024, 11, 20, 20, 0)),
    ("明天 8:30 pm", sh(2024, 11, 21, 20, 30)),
    ("25号 20:00", sh(2024, 11, 25, 20, 0)),
    ("19号 20:00", sh(2024, 12, 19, 20, 0)),  # day of month already past: next month
    ("明天晚上8点开播", sh(2024, 11, 21, 20, 0)),
    ("  明天   20:00  ", sh(2024, 11, 21, 20, 0)),
    ("明天 20:00:45", sh(2024, 11, 21, 20, 0)),
    ("6-1 20:00", sh(2024, 6, 1, 20, 0)),  # 172 days ago: this year, past, as-is
    ("5-1 20:00", sh(2025, 5, 1, 20, 0)),  # 203 days ago: next year
]
AMBIGUOUS_TIMES = [
    ("明天8点", sh(2024, 11, 21, 8, 0), sh(2024, 11, 21, 20, 0)),
    ("明天 8:00", sh(2024, 11, 21, 8, 0), sh(2024, 11, 21, 20, 0)),
    # No day at 10:00: a morning already past is offered for tomorrow.
    ("8:00", sh(2024, 11, 21, 8, 0), sh(2024, 11, 20, 20, 0)),
    ("8点15分", sh(2024, 11, 21, 8, 15), sh(2024, 11, 20, 20, 15)),
    ("八点半", sh(2024, 11, 21, 8, 30), sh(2024, 11, 20, 20, 30)),
    ("10点", sh(2024, 11, 21, 10, 0), sh(2024, 11, 20, 22, 0)),
    ("11点", sh(2024, 11, 20, 11, 0), sh(2024, 11, 20, 23, 0)),
    ("11月25日 7点", sh(2024, 11, 25, 7, 0), sh(2024, 11, 25, 19, 0)),
    ("周六 1点", sh(2024, 11, 23, 1, 0), sh(2024, 11, 23, 13, 0)),
    # Today's weekday: each reading resolved on its own (9:00 has passed, 21:00 has not).
    ("周三 9点", sh(2024, 11, 27, 9, 0), sh(2024, 11, 20, 21, 0)),
]
DATE_ONLY = [
    "明天",
    "11-25",
    "11月25日",
    "周六",
    "下周三",
    "明天晚上",
    "今晚",
    "2024-11-25",
    "25号",
]
BAD_DATETIMES = [
    "", "hello", "8", "晚上", "开播", "2-30 20:00", "2月30日 20:00", "13-01 20:00",
    "2024-02-30 20:00", "25:00", "24:00", "明天25点", "明天 20:60", "8点61分", "上午13点",
    "下午0点", "凌晨8点", "下午3pm", "11-2519:30", "11月25日(周二) 20:00", "周八 20:00",
    "明天明天 20:00", "20:00 明天", "2024-11/25 20:00", "32号 20:00", "明天 20:00 和 21:00",
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), DATETIMES)
def test_parse_datetime(text: str, expected: datetime) -> None:
    result = parse_datetime(text, NOW)
    assert isinstance(result, datetime)
    assert result == expected
    assert result.tzinfo is SH and result.second == 0 and result.microsecond == 0


@pytest.mark.parametrize(("text", "morning", "evening"), AMBIGUOUS_TIMES)
def test_parse_datetime_ambiguous_hour(text: str, morning: datetime, evening: datetime) -> None:
    result = parse_datetime(text, NOW)
    assert isinstance(result, Ambiguous)
    assert result.options == (morning, evening)
    assert "上午" in result.question or "凌晨" in result.question
    assert "请回复带上午/下午/晚上的时间" in result.question


def test_ambiguous_question_wording() -> None:
    result = parse_datetime("明天8点", NOW)
    assert isinstance(result, Ambiguous)
    assert result.question == (
        "11月21日是上午8:00还是晚上20:00？请回复带上午/下午/晚上的时间，如「11月21日晚上8点」。"
    )


@pytest.mark.parametrize("text", DATE_ONLY)
def test_parse_datetime_date_without_time(text: str) -> None:
    result = parse_datetime(text, NOW)
    assert isinstance(result, Ambiguous)
    assert result.options == ()
    assert "几点" in result.question


@pytest.mark.parametrize("text", BAD_DATETIMES)
def test_parse_datetime_rejects(text: str) -> None:
    assert parse_datetime(text, NOW) is None


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        # 'now' in another zone: 17:30 UTC is already 01:30 tomorrow in Shanghai.
        ("明天 20:00", datetime(2024, 11, 20, 17, 30, tzinfo=UTC), sh(2024, 11, 22, 20, 0)),
        ("1月5日 20:00", sh(2024, 12, 20, 12, 0), sh(2025, 1, 5, 20, 0)),
        ("12-25 20:00", sh(2024, 1, 5, 12, 0), sh(2024, 12, 25, 20, 0)),
        ("2-29 20:00", sh(2023, 11, 20, 12, 0), sh(2024, 2, 29, 20, 0)),
        ("周六 20:00", sh(2024, 11, 23, 19, 59), sh(2024, 11, 23, 20, 0)),
        ("周六 20:00", sh(2024, 11, 23, 20, 0), sh(2024, 11, 30, 20, 0)),
        ("周六晚上12点", sh(2024, 11, 23, 23, 0), sh(2024, 11, 24, 0, 0)),
    ],
)
def test_parse_datetime_relative_to_now(text: str, now: datetime, expected: datetime) -> None:
    assert parse_datetime(text, now) == expected


def test_parse_datetime_feb_29_in_non_leap_year() -> None:
    assert parse_datetime("2-29 20:00", sh(2025, 11, 20, 12, 0)) is None


def test_parse_datetime_requires_aware_now() -> None:
    with pytest.raises(ValueError):
        parse_datetime("明天 20:00", datetime(2024, 11, 20, 10, 0))


ZONES = [SH, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Pacific/Kiritimati")]
NOWS = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from([*ZONES, timezone(timedelta(hours=-11))]),
)


@settings(deadline=None)
@given(now=NOWS, offset=st.integers(0, 6), hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_datetime_round_trip(now: datetime, offset: int, hour: int, minute: int) -> None:
    day = now.astimezone(SH).date() + timedelta(days=offset)
    expected = sh(day.year, day.month, day.day, hour, minute)
    for text in (
        f"{day:%Y-%m-%d} {hour:02d}:{minute:02d}",
        f"{day.month}月{day.day}日 {hour:02d}:{minute:02d}",
    ):
        result = parse_datetime(text, now)
        assert result == expected, text
        assert isinstance(result, datetime) and result.tzinfo is SH


def check_datetime_result(result: object) -> None:
    if isinstance(result, datetime):
        assert result.tzinfo is SH and result.second == 0 and result.microsecond == 0
    elif isinstance(result, Ambiguous):
        assert result.question and len(result.options) in (0, 2)
    else:
        assert result is None


@settings(deadline=None)
@given(st.text(), NOWS)
def test_datetime_never_raises(text: str, now: datetime) -> None:
    check_datetime_result(parse_datetime(text, now))


@settings(deadline=None)
@given(
    st.text(alphabet="0123456789:-/.T 年月日号周星期礼拜天今明后大晚早上下午中凌晨点时半刻分整"),
    NOWS,
)
def test_datetime_never_raises_on_dateish_text(text: str, now: datetime) -> None:
    check_datetime_result(parse_datetime(text, now))
