"""Loopback ports and address families for servers the tests start themselves."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A 127.0.0.1 port free for both UDP and TCP right now, as the OS hands them out
    (the caller must still cope with a race: something may take it before it binds)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no free loopback port for both UDP and TCP")


def loopback_v6_available() -> bool:
    """Whether ::1 can be bound here (a container may have IPv6 switched off)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True
