"""Registration QR codes: which campaign and unit a code carries, the web sign-up URL, the
poster (its code read back module by module), and `run_bot.py qr` without WeChat credentials;
the code to the public leaderboard (`qr --board`)."""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import segno
from matplotlib.image import imread

import run_bot
from bot import qr
from bot.clock import FrozenClock
from bot.qr import QRError, board_url, resolve, web_url, write_poster
from config.settings import Settings
from tests.helpers import Campaigns


@pytest.mark.parametrize(
    ("campaign", "unit", "scene"),
    [
        ("demo", None, "demo"),
        ("demo", "demo-youth", "demo:demo-youth"),
        ("litong-2024", None, "litong-2024"),
    ],
)
def test_a_code_carries_campaign_and_unit(
    all_campaigns: Campaigns, campaign: str, unit: str | None, scene: str
) -> None:
    target = resolve(all_campaigns, campaign, unit)
    assert target.scene == scene and target.campaign.id == campaign
    assert (target.unit.key if target.unit else None) == unit


@pytest.mark.parametrize(
    ("campaign", "unit", "message"),
    [
        ("nope", None, "unknown campaign 'nope' (known: demo, jiangle-2022"),
        ("demo", "nope", "campaign 'demo' has no unit 'nope' (known: demo-youth, demo-college"),
        ("litong-2024", "demo-youth", "has no unit 'demo-youth' (known: none)"),
    ],
)
def test_unknown_campaigns_and_units_are_named(
    all_campaigns: Campaigns, campaign: str, unit: str | None, message: str
) -> None:
    with pytest.raises(QRError, match=re.escape(message)):
        resolve(all_campaigns, campaign, unit)


@pytest.mark.parametrize(
    ("base", "scene", "url"),
    [
        ("https://bot.example.cn", "demo", "https://bot.example.cn/?scene=demo"),
        (
            "https://bot.example.cn/",
            "demo:demo-youth",
            "https://bot.example.cn/?scene=demo:demo-youth",
        ),
        ("http://127.0.0.1:8080", "a_b-c:d", "http://127.0.0.1:8080/?scene=a_b-c:d"),
    ],
)
def test_web_codes_open_the_sign_up_page_with_the_scene(base: str, scene: str, url: str) -> None:
    assert web_url(base, scene) == url


def read_code(png: Path, size: int) -> list[list[bool]]:
    """The dark modules of the code drawn in the poster's square (see write_poster)."""
    pixels = imread(png)
    height, width = pixels.shape[:2]
    left, top, side = 0.1 * width, (1 - 0.82) * height, 0.8 * width
    module = side / size
    return [
        [
            pixels[int(top + (r + 0.5) * module), int(left + (c + 0.5) * module)][:3].mean() < 0.5
            for c in range(size)
        ]
        for r in range(size)
    ]


@pytest.mark.parametrize("font", [None, "DejaVuSans"])
def test_the_poster_holds_the_code_of_the_content(
    all_campaigns: Campaigns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, font: str | None
) -> None:
    if font is not None:  # any font file stands in for a CJK one: the layout is what counts
        from matplotlib import font_manager

        path = Path(font_manager.findfont(font))
        monkeypatch.setattr(qr, "cjk_font", lambda: path)
    else:
        monkeypatch.setattr(qr, "cjk_font", lambda: None)
    content = "http://weixin.qq.com/q/02abcDEF"
    out = tmp_path / "poster.png"
    target = resolve(all_campaigns, "demo", "demo-youth")
    with pytest.warns(UserWarning, match="Glyph") if font else nullcontext():
        captioned = write_poster(
            content,
            out,
            title=target.campaign.name,
            subtitle="推荐单位：演示团县委",
            action="微信扫一扫，关注并报名",
            footer=target.scene,
        )
    assert captioned is (font is not None)
    expected = [
        [bool(m) for m in row] for row in segno.make(content, error="m").matrix_iter(border=4)
    ]
    assert read_code(out, len(expected)) == expected


def _clean_env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("BOT_PUBLIC_BASE_URL", "https://bot.example.cn")
    for name in ("WECHAT_APPID", "WECHAT_SECRET", "WECHAT_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_without_credentials_the_command_makes_a_web_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_env(monkeypatch, f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    monkeypatch.setattr(qr, "cjk_font", lambda: None)
    out = tmp_path / "posters" / "demo-youth.png"
    argv = [
        "qr",
        "--campaign",
        "demo",
        "--unit",
        "demo-youth",
        "--out",
        str(out),
        "--now",
        "2024-09-08T10:00",
    ]
    assert run_bot.main(argv) == 0
    printed = capsys.readouterr().out
    assert "no WECHAT_APPID/WECHAT_SECRET" in printed
    assert "https://bot.example.cn/?scene=demo:demo-youth" in printed
    assert "fc-list :lang=zh" in printed  # said plainly that the captions were left out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--campaign", "nope"], "unknown campaign 'nope'"),
        (["--campaign", "demo", "--unit", "nope"], "has no unit 'nope'"),
    ],
)
def test_the_command_refuses_unknown_campaigns_and_units(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    _clean_env(monkeypatch, f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    out = tmp_path / "x.png"
    assert run_bot.main(["qr", *argv, "--out", str(out)]) == 1
    assert message in capsys.readouterr().err and not out.exists()


def test_web_flag_and_permanent_are_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, all_campaigns: Campaigns, clock: FrozenClock
) -> None:
    monkeypatch.setattr(qr, "cjk_font", lambda: None)
    settings = Settings(
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        WECHAT_APPID="wx1",
        WECHAT_SECRET="s",
        BOT_PUBLIC_BASE_URL="https://bot.example.cn",
    )
    lines = qr.generate(
        settings,
        all_campaigns,
        clock,
        campaign_id="demo",
        unit_key=None,
        out=tmp_path / "x.png",
        permanent=True,
        web=True,  # credentials exist, but the web page is asked for: no WeChat call
    )
    assert any("applies to WeChat codes only" in line for line in lines)
    assert any("https://bot.example.cn/?scene=demo" in line for line in lines)


def code_of(content: str) -> list[list[bool]]:
    return [[bool(m) for m in row] for row in segno.make(content, error="m").matrix_iter(border=4)]


@pytest.mark.parametrize(
    ("base", "campaign", "url"),
    [
        ("https://bot.example.cn", "demo", "https://bot.example.cn/board/demo"),
        ("https://bot.example.cn/", "litong-2024", "https://bot.example.cn/board/litong-2024"),
        ("http://127.0.0.1:8080", "a_b", "http://127.0.0.1:8080/board/a_b"),
    ],
)
def test_board_codes_open_the_public_leaderboard(base: str, campaign: str, url: str) -> None:
    assert board_url(base, campaign) == url


def test_a_board_code_is_a_web_code_even_with_wechat_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, all_campaigns: Campaigns, clock: FrozenClock
) -> None:
    """Nothing to follow or sign up for: never a WeChat API call, and the poster's code (read
    back module by module) is the board's URL."""
    monkeypatch.setattr(qr, "cjk_font", lambda: None)

    def no_wechat(*_args: object, **_kw: object) -> None:
        raise AssertionError("a board code must not call WeChat")

    monkeypatch.setattr(qr, "command_line_api", no_wechat)
    settings = Settings(
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        WECHAT_APPID="wx1",
        WECHAT_SECRET="s",
        BOT_PUBLIC_BASE_URL="https://bot.example.cn/",
    )
    out = tmp_path / "board.png"
    lines = qr.generate(
        settings, all_campaigns, clock, campaign_id="litong-2024", unit_key=None, out=out,
        board=True,
    )  # fmt: skip
    url = "https://bot.example.cn/board/litong-2024"
    assert lines[0] == f"wrote {out}: the public leaderboard -> {url}"
    expected = code_of(url)
    assert read_code(out, len(expected)) == expected


def test_the_command_makes_a_board_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_env(monkeypatch, f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    monkeypatch.setattr(qr, "cjk_font", lambda: None)
    made: list[str] = []
    make = segno.make

    def recording(content: str, **kw: Any) -> segno.QRCode:
        made.append(content)  # what the code encodes, as segno got it
        return make(content, **kw)

    monkeypatch.setattr(segno, "make", recording)
    out = tmp_path / "board.png"
    assert run_bot.main(["qr", "--board", "--campaign", "demo", "--out", str(out)]) == 0
    assert made == ["https://bot.example.cn/board/demo"]
    assert "the public leaderboard -> https://bot.example.cn/board/demo" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra", [["--unit", "demo-youth"], ["--permanent"]])
def test_board_does_not_combine_with_unit_or_permanent(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
) -> None:
    _clean_env(monkeypatch, f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    out = tmp_path / "x.png"
    argv = ["qr", "--board", "--campaign", "demo", *extra, "--out", str(out)]
    assert run_bot.main(argv) == 1
    err = capsys.readouterr().err
    assert "--board makes a code to the public leaderboard: no --unit or --permanent" in err
    assert not out.exists()
