"""The web chat page in headless Chromium at phone width: a full sign-up by tapping and typing.

Chromium is Debian's (`/usr/bin/chromium`, installed by .ci/run), driven by Playwright with
`executable_path` (no browser download). Where it is absent the test skips with the reason,
except under CI / REQUIRE_BROWSER, where that fails. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import ROOT
from tests.helpers import free_port, serve

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    _require_browser()
    port = free_port()
    proc = serve(f"sqlite:///{tmp_path / 'bot.sqlite3'}", port, "2024-09-08T10:00:00+08:00")
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
