"""PostgreSQL restarted during traffic: requests fail cleanly (a friendly "busy" reply, never a
500) and the service recovers by itself, with no restart of the bot.

The test runs its own throwaway PostgreSQL cluster (initdb as the `postgres` user on a free port),
so restarting it disturbs nothing else. It needs root and the PostgreSQL server binaries; where
they are missing it skips with the reason, except under CI / REQUIRE_POSTGRES, where it fails.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, say, serve

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_postgres(*args: str) -> None:
    subprocess.run(
        ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(args)],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def private_postgres() -> Iterator[tuple[int, str]]:
    missing = None
    if os.geteuid() != 0:
        missing = "needs root to run a private PostgreSQL cluster as the postgres user"
    elif not BIN:
        missing = "PostgreSQL server binaries not found under /usr/lib/postgresql"
    else:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing = "no postgres system user"
    if missing:
        if os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(missing)
        pytest.skip(missing)
    bin_dir = BIN[-1]
    base = Path(tempfile.mkdtemp(prefix="pgrestart-"))
    shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    port = free_port()
    _as_postgres(f"{bin_dir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres")
    ctl = f"{bin_dir}/pg_ctl -D {data} -l {base}/log -w -o '-p {port} -k {base} -c listen_addresses=127.0.0.1'"
    _as_postgres(ctl, "start")
    try:
        yield port, ctl
    finally:
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", f"{ctl} -m immediate stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_restart_during_traffic(private_postgres: tuple[int, str]) -> None:
    pg_port, ctl = private_postgres
    url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/postgres"
    port = free_port()
    bot = serve(url, port, "2024-09-08T10:00:00+08:00")
    try:
        assert "多个赛事" in say(port, "u2", "报名")
        _as_postgres(ctl, "-m fast stop")
        during = say(port, "u2", "我在利通带好货·第一期")  # answered, not a 500
        assert "系统有点忙" in during
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.value.code == 503
        _as_postgres(ctl, "start")
        deadline = time.monotonic() + 30
        reply = ""
        while time.monotonic() < deadline:
            reply = say(port, "u3", "帮助")
            if "系统有点忙" not in reply:
                break
            time.sleep(0.5)
        assert "直播带货赛事助手" in reply
        # State written before the outage is still there: u2's conversation continues.
        assert "第1步" in say(port, "u2", "我在利通带好货·第一期")
    finally:
        bot.terminate()
        bot.wait()
