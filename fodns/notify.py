"""NOTIFY (RFC 1996): tell each zone's secondaries that its serial moved.

A change marks its zones; one round per zone then sends a NOTIFY to every
target over UDP, signed with the TSIG key its allow_transfer entry names, and
resends to those that do not answer (RFC 1996 §3.6), with growing waits. While
a round runs, further changes only mark the zone again, so a burst of switches
is followed by at most one more round (coalescing, §4.1).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype

from fodns.config import NotifyTarget, TsigKeyConfig, ZoneConfig
from fodns.logs import get_logger
from fodns.tsig import tsig_keyring

log = get_logger()
# RFC 1996 §3.6 suggests 60 s between resends; secondaries of a failover product
# must hear quickly, and a short first wait costs little on a lost datagram.
FIRST_WAIT = 0.5
MAX_WAIT = 30.0
MAX_TRIES = 8


class Notifier:
    """Sends NOTIFY rounds for zones whose data changed; call `changed(zone)` after a commit."""

    def __init__(
        self,
        zones: list[ZoneConfig],
        keys: dict[str, TsigKeyConfig],
        serial_of: Callable[[str], int],
    ) -> None:
        self.serial_of = serial_of
        self.keyring = tsig_keyring(keys)
        self.targets: dict[str, list[NotifyTarget]] = {zone.name: zone.notify for zone in zones}
        self._dirty: set[str] = set()
        self._rounds: dict[str, asyncio.Task[None]] = {}
        self.sent = 0  # NOTIFY messages sent, resends included (for tests and metrics)
        # The last outcome per (zone, target): "answered", "refused" or "unanswered".
        self.outcomes: dict[tuple[str, str, int], dict[str, Any]] = {}

    def changed(self, zone: str) -> None:
        """The zone's serial moved: make sure a round will tell its secondaries."""
        if not self.targets.get(zone):
            return
        self._dirty.add(zone)
        round_task = self._rounds.get(zone)
        if round_task is None or round_task.done():
            self._rounds[zone] = asyncio.get_running_loop().create_task(self._round(zone))

    async def close(self) -> None:
        for task in self._rounds.values():
            task.cancel()
        await asyncio.gather(*self._rounds.values(), return_exceptions=True)

    async def _round(self, zone: str) -> None:
        while zone in self._dirty:
            self._dirty.discard(zone)
            serial = self.serial_of(zone)
            await asyncio.gather(*(self._notify(zone, serial, t) for t in self.targets[zone]))

    async def _notify(self, zone: str, serial: int, target: NotifyTarget) -> None:
        target_log = log.bind(zone=zone, serial=serial, target=target.host, port=target.port)
        wait = FIRST_WAIT
        for attempt in range(1, MAX_TRIES + 1):
            rcode = await self._send_once(zone, target, wait)
            if rcode == dns.rcode.NOERROR:
                target_log.info("notify_answered", attempt=attempt)
                self._outcome(zone, serial, target, "answered")
                return
            if rcode is not None:
                # An answer, so resending would be the same: a key or ACL mismatch
                # the operator must fix (the secondary still refreshes on its timer).
                target_log.warning("notify_refused", rcode=dns.rcode.to_text(rcode))
                self._outcome(zone, serial, target, "refused", dns.rcode.to_text(rcode))
                return
            wait = min(MAX_WAIT, wait * 2) * random.uniform(0.9, 1.1)
        target_log.warning("notify_unanswered", tries=MAX_TRIES)
        self._outcome(zone, serial, target, "unanswered")

    def _outcome(
        self, zone: str, serial: int, target: NotifyTarget, outcome: str, rcode: str | None = None
    ) -> None:
        self.outcomes[(zone, target.host, target.port)] = {
            "outcome": outcome,
            "serial": serial,
            "rcode": rcode,
            "at": time.time(),
        }

    def health(self) -> list[dict[str, Any]]:
        """Each secondary's last NOTIFY outcome, for /healthz."""
        now = time.time()
        return [
            {
                "zone": zone,
                "target": f"{host}:{port}",
                "outcome": state["outcome"],
                "serial": state["serial"],
                "rcode": state["rcode"],
                "seconds_ago": round(now - state["at"], 3),
            }
            for (zone, host, port), state in sorted(self.outcomes.items())
        ]

    async def _send_once(
        self, zone: str, target: NotifyTarget, timeout: float
    ) -> dns.rcode.Rcode | None:
        """One NOTIFY (SOA question, AA set, §3.7); the answer's rcode, or None."""
        query = dns.message.make_query(zone + ".", dns.rdatatype.SOA)
        query.flags = dns.flags.AA  # and not RD; set first: the opcode lives in the flags
        query.set_opcode(dns.opcode.NOTIFY)
        if target.key is not None and self.keyring is not None:
            query.use_tsig(self.keyring, keyname=dns.name.from_text(target.key))
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[dns.rcode.Rcode] = loop.create_future()

        class Listener(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                try:
                    reply = dns.message.from_wire(data, keyring=False)
                except Exception:
                    return
                ours = reply.id == query.id and reply.opcode() == dns.opcode.NOTIFY
                if ours and not answered.done():
                    answered.set_result(reply.rcode())

        transport, _ = await loop.create_datagram_endpoint(
            Listener, remote_addr=(target.host, target.port)
        )
        try:
            transport.sendto(query.to_wire())
            self.sent += 1
            return await asyncio.wait_for(answered, timeout)
        except TimeoutError:
            return None
        finally:
            transport.close()
