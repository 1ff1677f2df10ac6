"""The real command line: check-config, serve refusing bad files, a kill -9 mid-sign-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import ROOT
from tests.helpers import free_port, say, serve

PY = sys.executable


def run_bot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, str(ROOT / "run_bot.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_check_config_accepts_the_shipped_campaigns() -> None:
    result = run_bot("check-config")
    assert result.returncode == 0, result.stderr
    for campaign in ("demo", "litong-2024", "litong-2025", "jiangle-2022", "jiangxi-2020"):
        assert f"ok  {campaign}:" in result.stdout


def test_check_config_names_file_and_field(tmp_path: Path) -> None:
    source = (ROOT / "config/campaigns/litong-2024.yaml").read_text(encoding="utf-8")
    broken = source.replace("end: 2024-09-11", "end: 2024-09-01", 1)
    assert broken != source
    (tmp_path / "litong.yaml").write_text(broken, encoding="utf-8")
    result = run_bot("check-config", str(tmp_path / "litong.yaml"))
    assert result.returncode == 1
    assert "litong.yaml: phases[0].end: before start" in result.stderr


def test_serve_refuses_bad_campaign_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: bad\nname: x\nphases: []\n", encoding="utf-8")
    env = {"BOT_CAMPAIGNS_DIR": str(tmp_path), "BOT_SECRET_KEY": "k" * 32}
    result = run_bot("serve", "--port", "1", env=env)
    assert result.returncode == 1
    assert "bad.yaml: phases:" in result.stderr and "bad.yaml: groups:" in result.stderr


def test_serve_in_production_needs_a_secret_key() -> None:
    """The key signs web-chat identities and export links: the well-known dev value is refused."""
    result = run_bot("serve", "--port", "1", env={"BOT_ENV": "prod", "BOT_SECRET_KEY": ""})
    assert result.returncode == 1
    assert "BOT_SECRET_KEY must be set in production" in result.stderr


@pytest.mark.parametrize("now", ["2024-09-08T10:00:00+08:00"])
def test_kill_9_mid_signup_then_restart_continues(db_url: str, now: str) -> None:
    port = free_port()
    server = serve(db_url, port, now)
    try:
        first = say(port, "u1", "报名")
        if "多个赛事" in first:
            say(port, "u1", "我在利通带好货·第一期")
        say(port, "u1", "王小文")
        assert "第3步" in say(port, "u1", "13812345678")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    server = serve(db_url, port, now)
    try:
        assert "第4步" in say(port, "u1", "25")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()


def test_after_registration_phase_signup_is_refused(db_url: str) -> None:
    port = free_port()
    server = serve(db_url, port, "2024-09-20T10:00:00+08:00")
    try:
        reply = say(port, "u1", "报名")
        if "多个赛事" in reply:
            reply = say(port, "u1", "我在利通带好货·第一期")
        assert "报名已于2024年9月11日 23:59截止" in reply
    finally:
        server.terminate()
        server.wait()
