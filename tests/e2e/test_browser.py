"""The web pages in headless Chromium at phone width: a full sign-up in the web chat by tapping
and typing, and the public leaderboard (龙虎榜) of streamers signed up and imported for real.

Chromium is Debian's (`/usr/bin/chromium`, installed by .ci/run), driven by Playwright with
`executable_path` (no browser download). Where it is absent the test skips with the reason,
except under CI / REQUIRE_BROWSER, where that fails. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import ROOT
from tests.e2e.test_cli_and_restart import run_bot
from tests.helpers import free_port, say, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 390, "height": 844}
# Flags for a closed network (no background connections) and a root user (no sandbox).
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") or os.environ.get("REQUIRE_BROWSER"):
        pytest.fail(reason)
    pytest.skip(reason)


NOW = "2024-09-08T10:00:00+08:00"


@pytest.fixture
def db_file(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.sqlite3'}"


@pytest.fixture
def server(db_file: str) -> Iterator[int]:
    _require_browser()
    port = free_port()
    proc = serve(db_file, port, NOW)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait()


def test_signup_in_the_web_chat_at_phone_width(server: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True)
        page.goto(f"http://127.0.0.1:{server}/")
        log = page.locator("#log")
        expect(log).to_contain_text("直播带货赛事助手")

        def send(text: str) -> None:
            page.fill("#text", text)
            page.press("#text", "Enter")

        def tap(label: str) -> None:
            page.get_by_role("button", name=label, exact=True).last.click()

        send("报名")
        expect(log).to_contain_text("现在有多个赛事")
        page.locator(".choices button", has_text="我在利通带好货").last.click()
        expect(log).to_contain_text("第1步")
        for text in ("王小文", "13812345678", "2000-05-01"):
            send(text)
        tap("电商从业者")
        tap("抖音")
        for text in ("wxw_live", "8000", "300元"):
            send(text)
        expect(log).to_contain_text("诚信承诺")
        tap("同意")
        expect(log).to_contain_text("请核对")
        send("确认")
        expect(log.locator(".msg.bot").last).to_contain_text("报名成功！你已分入「新秀组」")
        # The page fits the phone: no horizontal scrolling.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        page.screenshot(path=str(ARTIFACTS / "web-chat-signup.png"), full_page=False)
        browser.close()


def scan(port: int, user: str, scene: str) -> None:
    body = json.dumps({"user": user, "event": {"type": "scan", "scene": scene}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/dev/messages", body, {"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).close()


# (user, name, mobile, fans, past sales): two 新秀组 and one 达人组 streamer of the demo campaign
STREAMERS = [
    ("b-wang", "王小文", "13812345671", "8000", "300元"),
    ("b-li", "李四", "13812345672", "5000", "0"),
    ("b-ouyang", "欧阳娜娜", "13812345673", "2万", "5000元"),
]
STATS = (
    "主播昵称,抖音号,开播时间,直播时长(分钟),直播间成交金额(元),退款金额(元),累计观看人数,点赞数\n"
)


def import_stats(db_file: str, path: Path, rows: list[str]) -> None:
    """The organizer's platform export through the real command line."""
    path.write_text(STATS + "\n".join(rows) + "\n", encoding="utf-8")
    result = run_bot(
        "import-stats", "--campaign", "demo", str(path), "--now", NOW, env={"DATABASE_URL": db_file}
    )
    assert result.returncode == 0, result.stderr


def test_public_board_at_phone_width(server: int, db_file: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    for user, name, mobile, fans, sales in STREAMERS:
        scan(server, user, "demo:demo-youth")
        answers = [name, mobile, "1995-05-01", "电商从业者", "抖音", f"{user}_live", fans, sales]
        for text in [*answers, "不组队", "同意", "确认"]:
            reply = say(server, user, text)
        assert "报名成功" in reply, reply
    import_stats(
        db_file,
        tmp_path / "day1.csv",
        [
            "王小文,b-wang_live,2024-09-05 20:00,120,12800,300,15000,5600",
            "李四,b-li_live,2024-09-05 19:00,90,4600,0,3200,880",
            "欧阳娜娜,b-ouyang_live,2024-09-06 20:00,180,56000,1200,90000,31000",
        ],
    )

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True)
        page.goto(f"http://127.0.0.1:{server}/board/demo")
        expect(page.locator("h1")).to_have_text("演示赛事 · 直播带货大赛")
        expect(page.locator("#phase-name")).to_have_text("直播竞赛")
        expect(page.locator("#countdown")).to_contain_text("距结束")
        rows = page.locator("#list li")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("王*文")
        expect(rows.nth(0)).to_contain_text("净成交额1.25万元")
        expect(rows.nth(1)).to_contain_text("李*")
        # The page fits the phone (no horizontal scrolling); screenshot of the first group.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(ARTIFACTS / "board.png"), full_page=False)

        page.get_by_role("tab", name=re.compile("达人组")).click()
        expect(rows).to_have_count(1)
        expect(rows.nth(0)).to_contain_text("欧**娜")
        expect(page.get_by_role("tab", name=re.compile("达人组"))).to_have_attribute(
            "aria-selected", "true"
        )

        # A new import, then the page's own refresh (every minute; called here at once):
        # 李四 overtakes 王小文, and the tab chosen stays chosen.
        import_stats(
            db_file, tmp_path / "day2.csv", ["李四,b-li_live,2024-09-07 19:00,240,30000,0,9000,800"]
        )
        page.get_by_role("tab", name=re.compile("新秀组")).click()
        page.evaluate("refresh()")
        expect(rows.nth(0)).to_contain_text("李*")
        expect(rows.nth(1)).to_contain_text("王*文")

        html = page.content()
        for _user, name, mobile, _fans, _sales in STREAMERS:
            assert name not in html and mobile not in html
        assert re.search(r"1\d{10}", html) is None
        browser.close()
