"""Feishu long-connection mode (FEISHU_MODE=ws), for offices without a public URL.

lark-oapi's `ws.Client` runs on a module-level event loop and `start()` blocks forever, with no
stop. So it runs in its own thread on a loop of its own (set as the module's loop before the
client is built, never the aiohttp loop), and stopping means: no reconnect, close the socket,
cancel that loop's tasks so `start()` returns. Events reach the same `EventDispatcherHandler` as the webhook, whose handlers
hand work to the aiohttp loop thread-safely: same code, same dedup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import lark_oapi as lark
import lark_oapi.ws.client as ws_client

log = logging.getLogger(__name__)


class LongConnection:
    def __init__(
        self, app_id: str, app_secret: str, domain: str, handler: lark.EventDispatcherHandler
    ) -> None:
        self._args = (app_id, app_secret, domain, handler)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: lark.ws.Client | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feishu-ws", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=10)

    def _run(self) -> None:
        app_id, app_secret, domain, handler = self._args
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        ws_client.loop = loop  # the SDK's start() runs on this module global
        self._loop = loop
        self._client = lark.ws.Client(
            app_id,
            app_secret,
            event_handler=handler,
            domain=domain,
            log_level=lark.LogLevel.WARNING,
        )
        self._ready.set()
        try:
            self._client.start()
        except asyncio.CancelledError:  # our stop()
            pass
        except Exception:
            log.exception("feishu long connection ended")
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _shutdown(self) -> None:
        assert self._client is not None
        self._client._auto_reconnect = False  # no public switch; a closed socket would redial
        # The receive and ping loops first (so closing the socket is not an "error" to them),
        # then the socket, then start()'s wait-forever, so start() returns.
        current = asyncio.current_task()
        forever = [t for t in asyncio.all_tasks() if _is_select(t)]
        loops = [t for t in asyncio.all_tasks() if t is not current and t not in forever]
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._client._disconnect()
        for task in forever:
            task.cancel()

    def stop(self, timeout: float = 5.0) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("feishu long connection did not stop within %.0fs", timeout)


def _is_select(task: asyncio.Task[object]) -> bool:
    """The SDK's `_select()`, which `start()` runs until the loop ends."""
    return getattr(task.get_coro(), "cr_code", None) is ws_client._select.__code__
