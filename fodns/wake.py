"""Waking a DNS worker when a change commits: a one-way pipe from the API process.

The API process owns the store's writer, so it knows first that a change is
committed (Store.on_commit); it writes one byte down each worker's pipe, and the
worker reads the log from its own cursor (fodns/feed.py). The byte carries
nothing: the log stays the truth, and a worker still looks at the log now and
then by itself, so a lost wake-up costs one slow poll, never a change.

A pipe per worker rather than one eventfd or socket for all: each worker has its
own readiness (one reader cannot drain a wake-up meant for another), many
wake-ups coalesce into one read, a full pipe already means "a wake-up is
pending" so the writer never blocks, it works on every POSIX system, and the
end of the pipe (EOF) tells a worker at once that the API process is gone.
"""

from __future__ import annotations

import asyncio
import multiprocessing.connection
import os
from collections.abc import Callable

READ_SIZE = 4096  # wake-ups drained per read: any number of them is one catch-up


class WakeSender:
    """The API process's end of one worker's wake pipe."""

    def __init__(self, connection: multiprocessing.connection.Connection) -> None:
        self._connection = connection  # kept: closing it closes the pipe
        self._fd = connection.fileno()
        os.set_blocking(self._fd, False)

    def wake(self) -> bool:
        """Tell the worker to look at the log; False when it is gone (the pipe closed)."""
        try:
            os.write(self._fd, b"!")
        except BlockingIOError:
            return True  # the pipe is full of wake-ups the worker has not read yet
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._connection.close()


class WakeReceiver:
    """A worker's end of its wake pipe, read on the worker's event loop."""

    def __init__(self, connection: multiprocessing.connection.Connection) -> None:
        self._connection = connection
        self._fd = connection.fileno()
        os.set_blocking(self._fd, False)

    def listen(
        self,
        loop: asyncio.AbstractEventLoop,
        woken: Callable[[], None],
        sender_gone: Callable[[], None],
    ) -> None:
        """Call `woken` when wake-ups arrive, `sender_gone` once when the pipe ends."""

        def readable() -> None:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                woken()
                return
            loop.remove_reader(self._fd)
            sender_gone()

        loop.add_reader(self._fd, readable)

    def close(self) -> None:
        self._connection.close()
