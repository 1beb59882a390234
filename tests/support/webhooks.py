"""A webhook receiver for tests and benchmarks: a real aiohttp server on 127.0.0.1 with an
OS-picked port, on a thread (and event loop) of its own, that records every POST as it
arrives and answers as the test says: a status, or nothing at all until released."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# What `answer` returns to hold a request unanswered (until `release()` or `stop()`).
HANG = None


@dataclass(frozen=True)
class Received:
    """One POST as it arrived: its headers, its body's bytes, the monotonic time."""

    headers: dict[str, str]
    body: bytes
    at: float
    path: str = "/"

    @property
    def payload(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]

    @property
    def seq(self) -> int | None:
        seq = self.payload["seq"]
        return None if seq is None else int(seq)


def answering(status: int) -> Callable[[int, Received], int | None]:
    return lambda index, received: status


@dataclass
class Receiver:
    """Answers the n-th request (from 0) with `answer(n, request)`: a status, or HANG."""

    answer: Callable[[int, Received], int | None] = field(default=answering(200))
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port: int = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _start(self) -> int:
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = getattr(site, "_server", None)
        return int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.Response:
        received = Received(dict(request.headers), await request.read(), time.monotonic())
        with self._lock:
            index = len(self.received)
            self.received.append(received)
        status = self.answer(index, received)
        if status is HANG:
            await self._released.wait()
            status = 200
        return web.Response(status=status)

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(
        self, condition: Callable[[list[Received]], object], timeout: float = 10.0
    ) -> bool:
        """Poll `condition(requests so far)` until it is true or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.requests()):
                return True
            time.sleep(0.01)
        return bool(condition(self.requests()))

    def release(self) -> None:
        """Answer the held requests (200), and hold no more: HANG answers at once."""
        self._loop.call_soon_threadsafe(self._released.set)

    def stop(self) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
