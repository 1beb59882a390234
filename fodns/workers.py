"""DNS worker processes (workers = N): each worker's life, and the pool that supervises them.

With workers = N the main process runs the admin API and N worker processes
(forked from a fork server, see WorkerPool) answer DNS. Each binds every listen
address itself with SO_REUSEPORT (the kernel spreads queries over them), loads
the zones, builds its own table, follows the store's event log, and reports to
the main process: "ready" once it serves, "applied" after each catch-up, its
counters once a second. The main process wakes every worker through its wake
pipe (fodns/wake.py) as soon as a change commits; a worker also looks at the log
by itself now and then, so a lost wake-up delays a change by one such look, never
loses it. A worker that dies is replaced after a wait that grows while
replacements keep dying, so a fault that kills every new worker cannot turn into
a tight respawn loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fodns.config import Config, ListenAddress
from fodns.consumers import TableFollower
from fodns.errors import ListenError
from fodns.feed import SAFETY_POLL_INTERVAL
from fodns.logs import configure_logging, get_logger
from fodns.query import QueryHandler
from fodns.server import (
    DnsServer,
    build_table,
    install_signal_handlers,
    load_zones,
    open_store,
    record_zone_files,
    reload_zones,
    run_event_loop,
    zone_serials,
)
from fodns.transfer import Transfers
from fodns.tsig import tsig_keyring
from fodns.wake import WakeReceiver, WakeSender

log = get_logger()
COUNTER_REPORT_INTERVAL = 1.0
# A replacement that dies within this many seconds of its start counts as a
# failed restart: the wait before the next one doubles, from the first to the last.
RESTART_QUICK_DEATH = 60.0
RESTART_WAIT_FIRST = 0.5
RESTART_WAIT_MAX = 30.0
# A worker whose last report is older than this is not counted as serving.
REPORT_STALE_AFTER = 5.0


def worker_main(
    config: Config,
    index: int,
    supervisor: int,
    report: multiprocessing.connection.Connection,
    listen_from: multiprocessing.connection.Connection | None = None,
    wake_from: multiprocessing.connection.Connection | None = None,
) -> None:
    """A worker process: its own table, its own SO_REUSEPORT sockets, reports to the
    process `supervisor` (fodns serve, whose pool started it; not its parent, which
    is the fork server).

    With `listen_from`, the worker builds its table, then waits there for the
    addresses to bind (worker 0 picks any port given as 0), so that all workers
    build at once instead of one after another. With `wake_from`, a byte there
    means "a change is committed": look at the log now.
    """
    configure_logging()
    worker_log = log.bind(worker=index, pid=os.getpid())

    def send(message: tuple[str, Any]) -> None:
        with contextlib.suppress(OSError):
            report.send(message)

    async def serve() -> None:
        zones = load_zones(config.zones)
        store = open_store(config, zones)
        # A replacement may start after the zone files were edited: the store
        # must know what this worker serves, and move the serial if it differs.
        record_zone_files(store, zones)
        table, applied = build_table(zones, store)
        handler = QueryHandler(table, config.dns.udp_payload, tsig_keyring(config.tsig))
        follower = TableFollower(lambda: handler.table, store, applied)
        dns_config = config.dns
        if listen_from is not None:
            addresses = await asyncio.to_thread(listen_from.recv)
            dns_config = dataclasses.replace(
                dns_config, listen=[ListenAddress(host, port) for host, port in addresses]
            )
        server = DnsServer(
            handler,
            dns_config,
            reuse_port=True,
            transfers=Transfers(
                lambda: handler.table, config.zones, config.tsig, store.journal, handler.counters
            ),
        )
        try:
            bound = await server.start()
        except ListenError as exc:
            send(("failed", str(exc)))
            return
        send(("ready", _state(bound, follower.applied_seq, handler)))
        stop = asyncio.Event()

        def reload() -> None:
            reloaded = reload_zones(handler, config, store)
            send(("reloaded", zone_serials(handler.table) if reloaded else None))

        install_signal_handlers(stop, reload)
        # Set by a wake-up, and by stop so that stopping never waits for a poll.
        nudged = asyncio.Event()
        loop = asyncio.get_running_loop()
        stopping = loop.create_task(stop.wait())
        stopping.add_done_callback(lambda _: nudged.set())

        def orphaned() -> None:
            # fodns serve is gone (kill -9, the OOM killer) and this process was handed
            # to init: nobody supervises it now. Left running, it would go on answering
            # on the shared port (SO_REUSEPORT) beside a restarted fodns, never
            # reloaded, stopped or replaced. Stop as on SIGTERM. Seen at once as the
            # end of the wake pipe; the supervisor check below is the fallback.
            if not stop.is_set():
                worker_log.error("worker_orphaned", supervisor=supervisor)
                stop.set()

        if wake_from is not None:
            WakeReceiver(wake_from).listen(loop, nudged.set, orphaned)
        worker_log.info("worker_started", listen=[str(a) for a in bound])
        next_report = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(nudged.wait(), SAFETY_POLL_INTERVAL)
            nudged.clear()
            # Follow the change log: the store is the spine, every worker reads it.
            try:
                # One read of the log: nothing after the cursor is an empty run.
                before = follower.applied_seq
                if follower.catch_up() > before:
                    send(("applied", (follower.applied_seq, zone_serials(handler.table))))
            except Exception:
                # The database could not be read (locked, I/O error): keep serving
                # what this worker has and try again; the parent sees it lag.
                worker_log.exception("worker_catch_up_failed", applied=follower.applied_seq)
                await asyncio.sleep(1.0)
            if time.monotonic() >= next_report:
                next_report += COUNTER_REPORT_INTERVAL
                send(("counters", handler.counters))
                # Not "has my parent changed": the parent is the fork server, which
                # may die (and be replaced) while fodns serve supervises on.
                if not _running(supervisor):
                    orphaned()
        stopping.cancel()
        await server.close()
        store.close()

    try:
        run_event_loop(serve)
    except Exception as exc:  # building the table failed, or worse: tell the parent
        send(("failed", str(exc)))
        raise


def _running(pid: int) -> bool:
    """Whether process `pid` still runs: it exists and is not a zombie (dead, waiting
    for its own parent to collect its exit status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _state(bound: list[ListenAddress], applied: int, handler: QueryHandler) -> dict[str, Any]:
    return {
        "listen": [(a.host, a.port) for a in bound],
        "applied": applied,
        "serials": zone_serials(handler.table),
    }


@dataclass
class Worker:
    index: int
    process: multiprocessing.process.BaseProcess
    report: multiprocessing.connection.Connection
    counters: list[int] = field(default_factory=list)
    ready: bool = False  # serving DNS (its sockets are bound and its table built)
    applied_seq: int = 0
    serials: dict[str, int] = field(default_factory=dict)  # zone -> SOA serial it serves
    reloads: int = 0  # SIGHUP reloads finished (or failed), to wait for the next one
    started: float = field(default_factory=time.monotonic)
    last_report: float = field(default_factory=time.monotonic)
    # Where the parent sends the addresses to bind, for a worker started before
    # worker 0 had picked its port.
    instructions: multiprocessing.connection.Connection | None = None
    waker: WakeSender | None = None  # its wake pipe: "a change is committed"

    def running(self) -> bool:
        """The process runs, as the kernel says. Not `process.is_alive()`: that asks the
        fork server, and answers "dead" for every worker once the fork server is gone."""
        return self.process.pid is not None and _running(self.process.pid)

    def serving(self, now: float) -> bool:
        """Alive, ready, and heard from lately."""
        return self.ready and self.running() and now - self.last_report <= REPORT_STALE_AFTER


class WorkerPool:
    """Spawns and supervises DNS worker processes; replaces one that dies, with backoff."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers: dict[int, Worker] = {}
        # Workers are forked from a fork server, a clean process started once that has
        # already imported this module: never from the main process (its threads, event
        # loop and sockets must not be inherited, which is why fork is not used), and
        # without a fresh interpreter importing everything again for each worker, as
        # spawn did (most of a second of CPU apiece), so a dead worker's replacement
        # starts at once. Should the fork server itself die, multiprocessing starts
        # another at the next worker start.
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["fodns.workers"])
        self.stopping = False
        self.listen: list[ListenAddress] = []
        self.restarts = 0  # workers replaced after dying (fodns_dns_worker_restarts_total)
        self._quick_deaths: dict[int, int] = {}  # per slot: replacements that died young
        # Called (on the event loop) whenever a worker reports or dies: what the workers
        # serve may have moved (see consumers.Feed.progressed).
        self.on_progress: Callable[[], None] = lambda: None

    def start(self) -> list[ListenAddress]:
        """Start every worker at once; worker 0 binds first, and if a port was 0 the
        others are told the port it got before they bind the same."""
        needs_port = any(address.port == 0 for address in self.config.dns.listen)
        first = self._spawn(0, self.config)
        others = [
            self._spawn(index, self.config, wait_for_listen=needs_port)
            for index in range(1, self.config.dns.workers)
        ]
        self.listen = [ListenAddress(h, p) for h, p in self._wait_ready(first)]
        self.config = _with_listen(self.config, self.listen)  # replacements bind these
        for worker in others:
            if worker.instructions is not None:
                worker.instructions.send([(a.host, a.port) for a in self.listen])
        for worker in others:
            self._wait_ready(worker)
        return self.listen

    def _spawn(self, index: int, config: Config, wait_for_listen: bool = False) -> Worker:
        receive, send = self.context.Pipe(duplex=False)
        listen_from, instructions = (
            self.context.Pipe(duplex=False) if wait_for_listen else (None, None)
        )
        wake_from, wake_to = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=worker_main,
            args=(config, index, os.getpid(), send, listen_from, wake_from),
            name=f"fodns-dns-{index}",
            daemon=True,
        )
        process.start()
        send.close()
        wake_from.close()
        if listen_from is not None:
            listen_from.close()
        old = self.workers.get(index)
        if old is not None and old.waker is not None:
            old.waker.close()
        worker = Worker(
            index, process, receive, instructions=instructions, waker=WakeSender(wake_to)
        )
        self.workers[index] = worker
        return worker

    def _wait_ready(self, worker: Worker, timeout: float = 60.0) -> list[tuple[str, int]]:
        if not worker.report.poll(timeout):
            raise ListenError(f"DNS worker {worker.index} did not start within {timeout:.0f} s")
        try:
            kind, payload = worker.report.recv()
        except EOFError:
            raise ListenError(f"DNS worker {worker.index} exited while starting") from None
        if kind != "ready":
            raise ListenError(str(payload))
        self._became_ready(worker, payload)
        return payload["listen"]  # type: ignore[no-any-return]

    def _became_ready(self, worker: Worker, state: dict[str, Any]) -> None:
        worker.ready = True
        worker.applied_seq = state["applied"]
        worker.serials = state["serials"]
        worker.last_report = time.monotonic()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        for worker in self.workers.values():
            loop.add_reader(worker.report.fileno(), self._on_report, loop, worker)

    def _on_report(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        try:
            self._read_report(loop, worker)
        finally:
            self.on_progress()

    def _read_report(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        try:
            kind, payload = worker.report.recv()
        except (EOFError, OSError):
            loop.remove_reader(worker.report.fileno())
            worker.report.close()
            if not self.stopping:
                self._died(loop, worker)
            return
        worker.last_report = time.monotonic()
        if kind == "counters":
            worker.counters = payload
        elif kind == "applied":
            worker.applied_seq, worker.serials = payload
        elif kind == "ready":
            self._became_ready(worker, payload)
            log.info("worker_replaced", worker=worker.index, pid=worker.process.pid)
        elif kind == "reloaded":
            worker.reloads += 1
            if payload is not None:
                worker.serials = payload
        elif kind == "failed":
            log.error("worker_failed", worker=worker.index, error=payload)

    def _died(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        """Replace a dead worker, after a wait that doubles while replacements die young."""
        worker.ready = False
        worker.process.join(0.2)  # its exit code, if it has finished exiting
        lived = time.monotonic() - worker.started
        quick = self._quick_deaths.get(worker.index, 0) + 1 if lived < RESTART_QUICK_DEATH else 1
        self._quick_deaths[worker.index] = quick
        wait = min(RESTART_WAIT_MAX, RESTART_WAIT_FIRST * 2 ** (quick - 1))
        self.restarts += 1
        log.error(
            "worker_died",
            worker=worker.index,
            pid=worker.process.pid,
            exitcode=worker.process.exitcode,
            lived_seconds=round(lived, 3),
            restart_in=wait,
        )
        loop.call_later(wait, self._replace, loop, worker.index)

    def _replace(self, loop: asyncio.AbstractEventLoop, index: int) -> None:
        if self.stopping:
            return
        replacement = self._spawn(index, self.config)
        loop.add_reader(replacement.report.fileno(), self._on_report, loop, replacement)

    def wake(self, seq: int) -> None:
        """Event `seq` is committed: wake every worker to read the log. Called on the
        store's writer thread (Store.on_commit); never blocks."""
        for worker in list(self.workers.values()):
            if worker.waker is not None:
                worker.waker.wake()

    def served_seq(self) -> int | None:
        """The seq of the last event every live worker serves (the served frontier);
        None while none is alive or one is still starting. A dead worker does not
        count: its sockets closed with it. Every live one does, even one not heard
        from lately (stuck: the kernel still queues queries to its sockets, and it
        answers them from its old table when it runs again) or one still starting
        (a replacement may answer from a table built before a change until it
        reports having applied it)."""
        live = self._live_if_all_ready()
        return None if live is None else min(w.applied_seq for w in live)

    def served_serial(self, zone: str) -> int | None:
        """The zone's SOA serial as every live worker serves it (the least, as the
        frontier); None while one is not serving it."""
        live = self._live_if_all_ready()
        if live is None or not all(zone in w.serials for w in live):
            return None
        return min(w.serials[zone] for w in live)

    def _live_if_all_ready(self) -> list[Worker] | None:
        """The live workers, when there are some and every one has started serving."""
        live = [w for w in self.workers.values() if w.running()]
        return live if live and all(w.ready for w in live) else None

    async def reload(self, timeout: float = 120.0) -> bool:
        """SIGHUP every worker and wait until each has reloaded its zone files (or
        kept its old table); False if one has not in time."""
        wanted = {index: worker.reloads + 1 for index, worker in self.workers.items()}
        self.signal_all(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while any(w.reloads < wanted.get(i, 0) for i, w in self.workers.items() if w.ready):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def counters(self) -> list[list[int]]:
        return [w.counters for w in self.workers.values() if w.counters]

    def states(self) -> list[dict[str, Any]]:
        """Each worker slot as /healthz shows it."""
        now = time.monotonic()
        return [
            {
                "index": w.index,
                "pid": w.process.pid,
                "serving": w.serving(now),
                "applied_seq": w.applied_seq,
                "serials": dict(w.serials),
                "last_report_seconds_ago": round(now - w.last_report, 3),
            }
            for w in sorted(self.workers.values(), key=lambda w: w.index)
        ]

    def signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            if worker.running():
                os.kill(worker.process.pid, signum)  # type: ignore[arg-type]

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every worker, wait up to `timeout` for them all, SIGKILL the rest."""
        self.stopping = True
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(w.running() for w in self.workers.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.signal_all(signal.SIGKILL)
        for worker in self.workers.values():
            worker.process.join(1.0)  # multiprocessing's own bookkeeping of the exit


def _with_listen(config: Config, listen: list[ListenAddress]) -> Config:
    return dataclasses.replace(config, dns=dataclasses.replace(config.dns, listen=listen))
