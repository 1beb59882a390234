"""`fodns serve`: DNS and the admin API in one process tree, from start-up to shutdown."""

from __future__ import annotations

import asyncio
import errno
import sys
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from fodns.api import create_app
from fodns.config import Config, ListenAddress
from fodns.errors import ListenError
from fodns.logs import get_logger
from fodns.metrics import build_registry
from fodns.notify import Notifier
from fodns.query import QueryHandler
from fodns.route53 import Route53Mirror
from fodns.server import (
    DnsServer,
    WorkerPool,
    add_groups,
    build_table,
    install_signal_handlers,
    open_store,
    reload_zones,
    run_event_loop,
    zone_serials,
)
from fodns.store import Store
from fodns.tokens import admin_tokens
from fodns.transfer import Transfers
from fodns.tsig import tsig_keyring

log = get_logger()


def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT. Raises FodnsError for anything that stops start-up."""
    table = build_table(config)  # zone errors stop start-up here, before any socket or database
    store = open_store(config, table)
    tokens = admin_tokens(config.api.token, config.store_path)
    for name in set(tokens.values()):
        store.ensure_token_name(name)  # events name their actor by the token's name
    mirror = Route53Mirror(store, config.route53, config.zones) if config.route53.enabled else None
    try:
        if mirror is not None:
            mirror.start()  # its own thread: Route53 never holds up DNS or the API
        if config.dns.workers == 1:
            add_groups(table, store)
            handler = QueryHandler(table, config.dns.udp_payload, tsig_keyring(config.tsig))
            run_event_loop(lambda: _serve_in_process(config, handler, store, tokens, mirror))
        else:
            del table  # each worker builds its own
            run_event_loop(lambda: _serve_with_workers(config, store, tokens, mirror))
    finally:
        if mirror is not None:
            mirror.stop()
        store.close()


async def _serve_in_process(
    config: Config,
    handler: QueryHandler,
    store: Store,
    tokens: dict[str, str],
    mirror: Route53Mirror | None,
) -> None:
    transfers = Transfers(lambda: handler.table, config.zones, config.tsig, store.journal)
    dns_server = DnsServer(handler, config.dns, transfers=transfers)
    listen = await dns_server.start()
    registry = build_registry(lambda: [handler.counters], mirror)
    # The API follows its writes into whichever table this process serves now
    # (SIGHUP replaces it), so it asks the handler at each request.
    notifier = Notifier(config.zones, config.tsig, lambda zone: zone_serials(handler.table)[zone])
    app = create_app(
        registry,
        lambda: _health(handler, listen, 1, mirror),
        store=store,
        table=lambda: handler.table,
        tokens=tokens,
        notifier=notifier,
        mirror=mirror,
    )
    runner = await _start_api(config, app)
    stop = asyncio.Event()

    def reload() -> None:
        before = zone_serials(handler.table)
        reload_zones(handler, config, store)
        _notify_moved(notifier, before, zone_serials(handler.table))

    install_signal_handlers(stop, reload)
    _announce(config, listen, zone_serials(handler.table))
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
    await dns_server.close()


async def _serve_with_workers(
    config: Config, store: Store, tokens: dict[str, str], mirror: Route53Mirror | None
) -> None:
    pool = WorkerPool(config)
    loop = asyncio.get_running_loop()
    listen = await loop.run_in_executor(None, pool.start)
    try:
        pool.watch(loop)
        registry = build_registry(pool.counters, mirror)
        notifier = Notifier(config.zones, config.tsig, store.serial)
        app = create_app(
            registry,
            lambda: _health(None, listen, len(pool.workers), mirror),
            store=store,
            tokens=tokens,
            served=pool.served,
            notifier=notifier,
            mirror=mirror,
        )
        runner = await _start_api(config, app)
        stop = asyncio.Event()

        reload_wanted = asyncio.Event()

        async def reload_on_request() -> None:
            # One reload at a time: a SIGHUP during one asks for one more after it,
            # so each NOTIFY follows a reload that every worker has finished.
            while True:
                await reload_wanted.wait()
                reload_wanted.clear()
                before = {zone.name: store.serial(zone.name) for zone in config.zones}
                if await pool.reload():
                    after = {zone.name: store.serial(zone.name) for zone in config.zones}
                    _notify_moved(notifier, before, after)

        reloader = loop.create_task(reload_on_request())
        install_signal_handlers(stop, reload_wanted.set)
        _announce(config, listen, [z.name for z in config.zones])
        await stop.wait()
        log.info("stopping")
        reloader.cancel()
        await runner.cleanup()
    finally:
        await loop.run_in_executor(None, pool.stop)


def _notify_moved(notifier: Notifier, before: dict[str, int], after: dict[str, int]) -> None:
    """After a reload: NOTIFY the secondaries of each zone whose serial moved."""
    for zone, serial in after.items():
        if before.get(zone) != serial:
            notifier.changed(zone)


async def _start_api(config: Config, app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    address = config.api.listen
    try:
        await web.TCPSite(runner, address.host, address.port).start()
    except OSError as exc:
        await runner.cleanup()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ListenError(f"cannot listen on {address} (admin API): {why}") from None
    for site in runner.sites:
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or ():
            host, port = sock.getsockname()[:2]
            config.api.listen = ListenAddress(host, port)
    return runner


def _health(
    handler: QueryHandler | None,
    listen: list[ListenAddress],
    workers: int,
    mirror: Route53Mirror | None,
) -> dict[str, Any]:
    zones = zone_serials(handler.table) if handler else {}
    health = {"ready": True, "dns": [str(a) for a in listen], "workers": workers, "zones": zones}
    if mirror is not None:
        health["route53"] = mirror.health()
    return health


def _announce(config: Config, listen: list[ListenAddress], zones: Iterable[str]) -> None:
    """The lines a new user can paste, on stdout; the same facts as a log event."""
    api = config.api.listen
    first = listen[0]
    zone_names = [str(z).rstrip(".") for z in zones]
    log.info(
        "dns_listening",
        listen=[str(a) for a in listen],
        zones=zone_names,
        workers=config.dns.workers,
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
    example = f"www.{zone_names[0]}" if zone_names else "www.example"
    print(
        f"fodns is serving {', '.join(zone_names)} on {', '.join(str(a) for a in listen)} "
        f"(UDP and TCP), admin API on http://{api}\n"
        f"  dig @{first.host} -p {first.port} {example}\n"
        f"  curl http://{api}/healthz\n"
        f"  curl http://{api}/metrics",
        flush=True,
    )
    sys.stdout.flush()
