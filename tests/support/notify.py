"""A secondary's NOTIFY port (RFC 1996) on loopback, as the NOTIFY tests read it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import dns.message
import dns.rcode

from tests.support.tsig import KEYRING


class NotifyReceiver:
    """A secondary's NOTIFY port on 127.0.0.1: reads each message as it comes (so none
    waits in the socket), verifies its TSIG, and answers with `rcode` unless told to
    ignore the first few, or held (`answering=False`) until `answer()`."""

    def __init__(
        self,
        ignore_first: int = 0,
        rcode: int = dns.rcode.NOERROR,
        answering: bool = True,
        keyring: object = KEYRING,
    ) -> None:
        self.rcode = rcode
        self.keyring = keyring
        self.ignore_first = ignore_first
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[tuple[float, dns.message.Message]] = []
        # Run on each NOTIFY before it is answered (the secondary's view at that moment).
        self.on_notify: Callable[[], object] | None = None
        self.seen_on_notify: list[object] = []
        self.answering = threading.Event()
        if answering:
            self.answering.set()
        self.held: list[tuple[dns.message.Message, tuple[str, int]]] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        deadline = time.monotonic() + 120  # bounded
        while self.running and time.monotonic() < deadline:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                self._answer_held()
                continue
            # Raises on a bad signature (or one made with another algorithm).
            message = dns.message.from_wire(data, keyring=self.keyring)
            self.received.append((time.monotonic(), message))
            if self.on_notify is not None:
                self.seen_on_notify.append(self.on_notify())
            if len(self.received) > self.ignore_first:
                self.held.append((message, peer))
            self._answer_held()

    def _answer_held(self) -> None:
        if not self.answering.is_set():
            return
        for message, peer in self.held:
            reply = dns.message.make_response(message)
            reply.set_rcode(self.rcode)
            self.sock.sendto(reply.to_wire(), peer)
        self.held.clear()

    def answer(self) -> None:
        """Answer what was held, and from now on each NOTIFY as it comes."""
        self.answering.set()

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.sock.close()
