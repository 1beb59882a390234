"""`fodns serve`: DNS and the admin API in one process tree, from start-up to shutdown."""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from fodns import __version__, batchio
from fodns.acmedns import create_acme_app
from fodns.api import MAX_REQUEST_LINE, TOKEN_BOOK_KEY, create_app
from fodns.checker import HealthChecker
from fodns.config import BUILT_IN, Config, ListenAddress, admin_token_credential
from fodns.consumers import Feed, NotifyFollower, TableFollower
from fodns.errors import ListenError
from fodns.health import SERVED_DEADLINE, HealthSources, health_report
from fodns.logs import get_logger
from fodns.metrics import HealthMetrics, WebhookMetrics, build_registry
from fodns.notify import Notifier
from fodns.query import QueryHandler
from fodns.records import head_records, unservable_values
from fodns.route53 import Route53Mirror
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
from fodns.store import Store
from fodns.tokens import TOKEN_FILE, admin_tokens
from fodns.transfer import Transfers
from fodns.tsig import tsig_keyring
from fodns.webhooks import WebhookDeliverer
from fodns.workers import WorkerPool

log = get_logger()
# What aiohttp's cleanup_ctx takes: starts a part when the app starts, closes it after.
Lifetime = Callable[[web.Application], AsyncIterator[None]]


def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT. Raises FodnsError for anything that stops start-up."""
    zones = load_zones(config.zones)  # zone errors stop start-up here, before any socket
    store = open_store(config, zones)
    try:
        # [api] token, else the systemd credential admin-token, else (tokens.py)
        # FODNS_ADMIN_TOKEN, else a generated one; empty or short ones stop start-up.
        configured = config.api.token
        configured = configured if configured is not None else admin_token_credential()
        tokens = admin_tokens(configured, config.store_path)
    except BaseException:
        store.close()
        raise
    try:
        store.check_acme_place()
    except BaseException:
        store.close()
        raise
    record_zone_files(store, zones)
    check_stored_values(store)
    _warn_if_challenges_mirrored(config)
    for name in set(tokens.values()):
        store.ensure_token_name(name)  # events name their actor by the token's name
    mirror = Route53Mirror(store, config.route53, config.zones) if config.route53.enabled else None
    if mirror is not None:
        # Its thread follows the log by itself; a commit (by this process) wakes it at
        # once instead of at its next poll. `changed` only sets a threading.Event,
        # so it is safe on the store's writer thread.
        wake_mirror = mirror.changed
        store.on_commit(lambda _seq: wake_mirror())
    try:
        if config.dns.workers == 1:
            table, applied = build_table(zones, store)
            handler = QueryHandler(table, config.dns.udp_payload, tsig_keyring(config.tsig))
            follower = TableFollower(lambda: handler.table, store, applied)
            run_event_loop(
                lambda: _serve_in_process(config, handler, follower, store, tokens, mirror)
            )
        else:
            del zones  # each worker loads its own
            run_event_loop(lambda: _serve_with_workers(config, store, tokens, mirror))
    finally:
        if mirror is not None:
            mirror.stop()  # stopped already by the app's cleanup, unless start-up failed
        store.close()


def check_stored_values(store: Store) -> None:
    """Look at every stored web-head value once at start: any that cannot be served is
    logged (record_unservable) and counted now, not first when a group answers with it."""
    for app in store.apps():
        head_records(app.load_balancer)
        head_records(app.web_servers)


async def _serve_in_process(
    config: Config,
    handler: QueryHandler,
    follower: TableFollower,
    store: Store,
    tokens: dict[str, str],
    mirror: Route53Mirror | None,
) -> None:
    transfers = Transfers(
        lambda: handler.table, config.zones, config.tsig, store.journal, handler.counters
    )
    dns_server = DnsServer(handler, config.dns, transfers=transfers)
    listen = await dns_server.start()

    # This process answers DNS: its table is the feed's one follower of the log, and
    # what it has applied is what DNS serves.
    feed = Feed(lambda: follower.applied_seq, SERVED_DEADLINE)
    feed.follow_log(store, follower)
    store.on_commit(feed.committed)

    def dns_states() -> list[dict[str, Any]]:
        return [
            {
                "index": 0,
                "pid": os.getpid(),
                "serving": True,
                "applied_seq": follower.applied_seq,
                "serials": zone_serials(handler.table),
                "last_report_seconds_ago": 0.0,
            }
        ]

    # Whichever table this process serves now (SIGHUP replaces it): asked each time.
    def served_serial(zone: str) -> int | None:
        return zone_serials(handler.table).get(zone)

    notifier = Notifier(config.zones, config.tsig, lambda zone: zone_serials(handler.table)[zone])
    notify_follower = _follow_with_notify(
        config, store, feed, notifier, follower.applied_seq, served_serial
    )
    sources = _health_sources(config, store, 1, dns_states, listen, mirror, notifier)
    registry = build_registry(lambda: [handler.counters], mirror, _service_state(sources))
    checker = HealthChecker(store, HealthMetrics(registry))
    sources.checker = checker
    deliverer = _webhook_deliverer(config, store, registry)
    sources.webhooks = deliverer
    app = create_app(
        registry,
        lambda: health_report(sources),
        store=store,
        tokens=tokens,
        served=feed.served,
        mirror=None if mirror is None else mirror.answer,
        allowed_hosts=frozenset(config.api.allowed_hosts),
        checker=checker,
        webhooks=deliverer,
        acme_resolver=config.acme.resolver,
    )
    app.cleanup_ctx.extend(_lifetimes(feed, notifier, mirror, checker, deliverer))
    runner = await _start_api(config, app)
    stop = asyncio.Event()
    acme_runner: web.AppRunner | None = None

    def reload() -> None:
        if reload_zones(handler, config, store) and notify_follower is not None:
            notify_follower.zones_reloaded()

    install_signal_handlers(stop, reload)
    try:
        acme_runner = await _start_acme(config, store, app, feed)
        _announce(config, listen, zone_serials(handler.table))
        await stop.wait()
        log.info("stopping")
    finally:
        if acme_runner is not None:
            await acme_runner.cleanup()
        await runner.cleanup()
        await dns_server.close()


async def _serve_with_workers(
    config: Config, store: Store, tokens: dict[str, str], mirror: Route53Mirror | None
) -> None:
    pool = WorkerPool(config)
    loop = asyncio.get_running_loop()
    listen = await loop.run_in_executor(None, pool.start)
    store.on_commit(pool.wake)  # each commit wakes every worker at once
    try:
        # The workers follow the log themselves; what they all report having applied
        # is what DNS serves.
        feed = Feed(pool.served_seq, SERVED_DEADLINE)
        pool.on_progress = feed.progressed
        pool.watch(loop)

        def notify_serial(zone: str) -> int:
            serial = pool.served_serial(zone)
            return store.serial(zone) if serial is None else serial

        notifier = Notifier(config.zones, config.tsig, notify_serial)
        started = pool.served_seq()
        notify_follower = _follow_with_notify(
            config,
            store,
            feed,
            notifier,
            store.last_seq() if started is None else started,
            pool.served_serial,
        )
        sources = _health_sources(
            config, store, config.dns.workers, pool.states, listen, mirror, notifier
        )
        registry = build_registry(pool.counters, mirror, _service_state(sources, pool))
        checker = HealthChecker(store, HealthMetrics(registry))
        sources.checker = checker
        deliverer = _webhook_deliverer(config, store, registry)
        sources.webhooks = deliverer
        app = create_app(
            registry,
            lambda: health_report(sources),
            store=store,
            tokens=tokens,
            served=feed.served,
            mirror=None if mirror is None else mirror.answer,
            allowed_hosts=frozenset(config.api.allowed_hosts),
            checker=checker,
            webhooks=deliverer,
            acme_resolver=config.acme.resolver,
        )
        app.cleanup_ctx.extend(_lifetimes(feed, notifier, mirror, checker, deliverer))
        runner = await _start_api(config, app)
        stop = asyncio.Event()

        reload_wanted = asyncio.Event()

        async def reload_on_request() -> None:
            # One reload at a time: a SIGHUP during one asks for one more after it,
            # so each NOTIFY follows a reload that every worker has finished.
            while True:
                await reload_wanted.wait()
                reload_wanted.clear()
                if await pool.reload() and notify_follower is not None:
                    notify_follower.zones_reloaded()

        reloader = loop.create_task(reload_on_request())
        install_signal_handlers(stop, reload_wanted.set)
        acme_runner: web.AppRunner | None = None
        try:
            acme_runner = await _start_acme(config, store, app, feed)
            _announce(config, listen, [z.name for z in config.zones])
            await stop.wait()
            log.info("stopping")
        finally:
            reloader.cancel()
            if acme_runner is not None:
                await acme_runner.cleanup()
            await runner.cleanup()
    finally:
        await loop.run_in_executor(None, pool.stop)


def _follow_with_notify(
    config: Config,
    store: Store,
    feed: Feed,
    notifier: Notifier,
    applied_seq: int,
    served_serial: Callable[[str], int | None],
) -> NotifyFollower | None:
    """NOTIFY as a follower of what DNS serves, when any zone has secondaries to tell."""
    zones = [zone.name for zone in config.zones if zone.notify]
    if not zones:
        return None
    follower = NotifyFollower(store, applied_seq, zones, served_serial, notifier.changed)
    feed.follow_served(follower)
    return follower


def _webhook_deliverer(
    config: Config, store: Store, registry: CollectorRegistry
) -> WebhookDeliverer | None:
    """Webhook delivery in this (the API's) process, woken by each commit; None where
    `[webhooks] enabled = false`."""
    if not config.webhooks.enabled:
        log.info("webhooks_disabled", why="[webhooks] enabled = false: nothing is sent")
        return None
    deliverer = WebhookDeliverer(store, config.webhooks, WebhookMetrics(registry))
    store.on_commit(deliverer.committed)  # only hands the seq to the loop: never blocks
    return deliverer


def _lifetimes(
    feed: Feed,
    notifier: Notifier,
    mirror: Route53Mirror | None,
    checker: HealthChecker,
    deliverer: WebhookDeliverer | None,
) -> list[Lifetime]:
    """The app's long-lived parts, started with the app and closed after it (last
    started, first closed): the mirror's thread, the NOTIFY rounds, the feed, webhook
    delivery, and the health checker (last: its automatic switches are changes the
    feed must serve)."""

    async def mirror_thread(app: web.Application) -> AsyncIterator[None]:
        if mirror is not None:
            mirror.start()  # its own thread: Route53 never holds up DNS or the API
        yield
        if mirror is not None:
            await asyncio.to_thread(mirror.stop)

    async def notify_rounds(app: web.Application) -> AsyncIterator[None]:
        yield
        await notifier.close()

    async def change_feed(app: web.Application) -> AsyncIterator[None]:
        feed.start()
        yield
        await feed.close()

    async def webhook_deliveries(app: web.Application) -> AsyncIterator[None]:
        if deliverer is not None:
            await deliverer.start()
        yield
        if deliverer is not None:
            await deliverer.close()

    async def health_checks(app: web.Application) -> AsyncIterator[None]:
        checker.start()
        yield
        await checker.close()

    return [mirror_thread, notify_rounds, change_feed, webhook_deliveries, health_checks]


def _health_sources(
    config: Config,
    store: Store,
    workers: int,
    dns_states: Callable[[], list[dict[str, Any]]],
    listen: list[ListenAddress],
    mirror: Route53Mirror | None,
    notifier: Notifier,
) -> HealthSources:
    return HealthSources(
        store=store,
        zones=[zone.name for zone in config.zones],
        workers_wanted=workers,
        dns_states=dns_states,
        listen=[str(a) for a in listen],
        mirror=mirror,
        notifier=notifier if any(zone.notify for zone in config.zones) else None,
    )


def _service_state(
    sources: HealthSources, pool: WorkerPool | None = None
) -> Callable[[], dict[str, float]]:
    def state() -> dict[str, float]:
        return {
            "ready": float(health_report(sources)["ready"]),
            "worker_restarts": pool.restarts if pool is not None else 0,
            "store_write_failures": sources.store.write_health.failures,
            "unservable_values": len(unservable_values()),
        }

    return state


async def _start_api(config: Config, app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, max_line_size=MAX_REQUEST_LINE)
    config.api.listen = await _listen(runner, config.api.listen, "admin API")
    return runner


async def _listen(runner: web.AppRunner, address: ListenAddress, what: str) -> ListenAddress:
    """Serve `runner` on `address`: the address it listens on (port 0 is the port the
    OS picked), or ListenError naming `what` (the runner cleaned up)."""
    await runner.setup()
    try:
        await web.TCPSite(runner, address.host, address.port).start()
    except OSError as exc:
        await runner.cleanup()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ListenError(f"cannot listen on {address} ({what}): {why}") from None
    for site in runner.sites:
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or ():
            host, port = sock.getsockname()[:2]
            address = ListenAddress(host, port)
    return address


async def _start_acme(
    config: Config, store: Store, admin: web.Application, feed: Feed
) -> web.AppRunner | None:
    """The acme-dns API on [acme] listen, in this (the admin API's) process, with the
    admin API's own token book; None where ACME is off."""
    settings = config.acme
    if not settings.enabled or settings.listen is None:
        return None
    app = create_acme_app(store, settings, admin[TOKEN_BOOK_KEY], feed.served, feed.frontier)
    runner = web.AppRunner(app, access_log=None)
    settings.listen = await _listen(runner, settings.listen, "acme-dns API")
    log.info(
        "acme_listening",
        listen=str(settings.listen),
        zone=settings.zone,
        label=settings.label,
        registration=settings.registration,
    )
    return runner


def _warn_if_challenges_mirrored(config: Config) -> None:
    """The Route53 mirror copies groups, never ACME challenges: with Route53's name servers
    in the zone's delegation, a CA asking them would find no challenge. Said at start."""
    settings = config.acme
    if not (settings.enabled and config.route53.enabled):
        return
    for zone in config.zones:
        if zone.name == settings.zone and zone.route53_hosted_zone_id:
            log.warning(
                "acme_zone_mirrored",
                zone=zone.name,
                label=settings.label,
                why="the Route53 mirror does not copy ACME challenges: if Route53's name "
                "servers are in the zone's delegation, delegate the label to fodns's name "
                "servers in the hosted zone (an NS record set), or use a zone only fodns "
                "serves as [acme] zone",
            )


def _announce(config: Config, listen: list[ListenAddress], zones: Iterable[str]) -> None:
    """The lines a new user can paste, on stdout; the same facts as a log event."""
    api = config.api.listen
    zone_names = [str(z).rstrip(".") for z in zones]
    log.info(
        "dns_listening",
        listen=[str(a) for a in listen],
        zones=zone_names,
        workers=config.dns.workers,
        # False where recvmmsg/sendmmsg are missing and UDP is read a datagram at a time:
        # said here, so a Linux host that lost them does not fall back unnoticed.
        udp_batches=batchio.available(),
    )
    log.info("api_listening", listen=str(api))
    limits = config.dns.rrl
    if limits.enabled:
        log.info(
            "rrl_enabled",
            responses_per_second=limits.responses_per_second,
            slip=limits.slip,
            ipv4_prefix=limits.ipv4_prefix,
            ipv6_prefix=limits.ipv6_prefix,
            table_size=limits.table_size,
            exempt=[str(network) for network in limits.exempt],
            per="worker",
        )
    else:
        log.info("rrl_disabled")
    print(announcement(config, listen, zone_names), flush=True)
    sys.stdout.flush()


def announcement(config: Config, listen: list[ListenAddress], zones: list[str]) -> str:
    """What `fodns serve` prints once it serves: where everything is, and (for the
    example zone, as `make run` serves it) lines to paste that each show something."""
    api = config.api.listen
    dns = f"@{listen[0].host} -p {listen[0].port}"
    database = config.store_path
    where = "" if database.is_absolute() else f" (in {Path.cwd()})"
    lines = [
        f"fodns {__version__} is serving {', '.join(zones)} on "
        f"{', '.join(str(a) for a in listen)} (UDP and TCP)",
        f"  admin API and dashboard: http://{api}/",
        *_acme_line(config),
        f"  database: {database}{where}",
        f"  admin token: {admin_token_source(config)}",
        "Try:",
    ]
    zone = zones[0]
    examples: list[tuple[str, str]] = []
    if config.source == BUILT_IN:
        # The example zone's own names, one line per kind of answer.
        examples = [
            (f"dig {dns} www.{zone}", "A records, AA set"),
            (f"dig {dns} www.{zone} AAAA +tcp", "the same over TCP"),
            (f"dig {dns} {zone} NS", "with glue for ns1 and ns2"),
            (f"dig {dns} anything.preview.{zone}", "a wildcard (RFC 4592)"),
            (f"dig {dns} nope.{zone}", "NXDOMAIN with the SOA"),
            (f"dig {dns} {zone} AXFR", "the whole zone (from this host only)"),
        ]
    else:
        examples = [(f"dig {dns} {zone} SOA", "the zone's SOA, AA set")]
    examples += [
        (f"curl http://{api}/healthz", "200 when ready, else 503 saying why"),
        (f"curl http://{api}/metrics", "Prometheus metrics"),
    ]
    width = max(len(command) for command, _ in examples) + 2
    lines += [f"  {command.ljust(width)}# {why}" for command, why in examples]
    return "\n".join(lines)


def _acme_line(config: Config) -> list[str]:
    settings = config.acme
    if not settings.enabled:
        return []
    return [f"  acme-dns API: http://{settings.listen}/ (registration: {settings.registration})"]


def admin_token_source(config: Config) -> str:
    """Where the admin token comes from, as a person should be told (never its value)."""
    if config.api.token is not None:
        return f"[api] token in {config.source}"
    if admin_token_credential() is not None:
        return "the systemd credential admin-token"
    if os.environ.get("FODNS_ADMIN_TOKEN"):
        return "FODNS_ADMIN_TOKEN"
    return str(config.store_path.parent / TOKEN_FILE)
