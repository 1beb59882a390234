"""Batched UDP I/O: many datagrams per system call with recvmmsg(2) and sendmmsg(2).

A query costs the server two system calls with one datagram each (recvfrom
and sendto), and on a busy server those calls, not the answer, are most of
the work. Linux can move a whole batch per call; Python's socket module has
no binding for that, so this module calls libc through ctypes with buffers set
up once: queries land in one preallocated buffer, replies are copied into
another, and each client's address stays the raw sockaddr the kernel wrote,
handed straight back to sendmmsg. It runs on the event loop as a reader of the
socket, so it is still just asyncio. Where recvmmsg is missing (not Linux),
`available()` says so and the server uses a DatagramProtocol instead.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import time
from typing import Any

from fodns import querystats, rrl
from fodns.logs import get_logger
from fodns.query import QueryHandler
from fodns.wire import slip_reply

log = get_logger()

BATCH = 64  # datagrams per system call
QUERY_BUFFER = 4096  # larger queries are cut; the cut is seen and answered FORMERR
REPLY_BUFFER = 65535  # the largest UDP reply we ever send (limited by EDNS anyway)
SOCKADDR_SPACE = 128  # sizeof(struct sockaddr_storage)
MAX_BATCHES_PER_WAKEUP = 16  # then yield to the loop, so TCP and the API get their turn
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _libc_functions() -> tuple[Any, Any] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    recvmmsg.restype = sendmmsg.restype = ctypes.c_int
    return recvmmsg, sendmmsg


_FUNCTIONS = _libc_functions()


def available() -> bool:
    return _FUNCTIONS is not None


class BatchedUdpReader:
    """Reads every queued datagram of a socket in batches, answers, replies in batches.

    `handler.answer(query)` is called for each datagram; a cut (too large)
    datagram goes to `handler.answer_oversized(query)` instead. With a
    `limiter`, each reply is judged by response rate limiting first.
    """

    def __init__(
        self,
        sock: socket.socket,
        handler: QueryHandler,
        limiter: rrl.ResponseRateLimiter | None = None,
    ) -> None:
        assert _FUNCTIONS is not None
        self._recvmmsg, self._sendmmsg = _FUNCTIONS
        self.sock = sock
        self.fd = sock.fileno()
        self.handler = handler
        self.limiter = limiter
        # The answer-latency histogram, counted per batch (see querystats).
        self.counters = handler.counters
        # sockaddr_in or sockaddr_in6: every peer of this socket has the same length.
        self.ipv6 = sock.family == socket.AF_INET6
        self.address_length = 28 if self.ipv6 else 16

        self._queries = ctypes.create_string_buffer(BATCH * QUERY_BUFFER)
        self._query_view = memoryview(self._queries).cast("B")
        self._replies = ctypes.create_string_buffer(BATCH * REPLY_BUFFER)
        self._reply_view = memoryview(self._replies).cast("B")
        self._addresses = ctypes.create_string_buffer(BATCH * SOCKADDR_SPACE)
        self._address_base = ctypes.addressof(self._addresses)
        # Each peer's address as integers, for rate limiting (see rrl: sources):
        # sin_addr is the 32-bit word at byte 4 of a sockaddr_in, sin6_addr the two
        # 64-bit words at byte 8 of a sockaddr_in6.
        address_bytes = memoryview(self._addresses).cast("B")
        self._address_words = address_bytes.cast("Q" if self.ipv6 else "I")
        self._address_stride = SOCKADDR_SPACE // self._address_words.itemsize

        self._receive = (_MMsgHdr * BATCH)()
        self._receive_iov = (_IoVec * BATCH)()
        self._send = (_MMsgHdr * BATCH)()
        self._send_iov = (_IoVec * BATCH)()
        query_base = ctypes.addressof(self._queries)
        reply_base = ctypes.addressof(self._replies)
        for index in range(BATCH):
            self._receive_iov[index].iov_base = query_base + index * QUERY_BUFFER
            self._receive_iov[index].iov_len = QUERY_BUFFER
            header = self._receive[index].msg_hdr
            header.msg_name = self._address_base + index * SOCKADDR_SPACE
            header.msg_iov = ctypes.pointer(self._receive_iov[index])
            header.msg_iovlen = 1
            self._send_iov[index].iov_base = reply_base + index * REPLY_BUFFER
            reply_header = self._send[index].msg_hdr
            reply_header.msg_name = self._address_base + index * SOCKADDR_SPACE
            reply_header.msg_namelen = self.address_length
            reply_header.msg_iov = ctypes.pointer(self._send_iov[index])
            reply_header.msg_iovlen = 1
        # The per-datagram fields, read and written as integers through views over
        # the structs: a ctypes attribute access builds an object each time.
        stride = ctypes.sizeof(_MMsgHdr)
        self._receive_words = memoryview(self._receive).cast("B").cast("I")
        self._length_word = [(i * stride + _MMsgHdr.msg_len.offset) // 4 for i in range(BATCH)]
        header_offsets = [i * stride + _MMsgHdr.msg_hdr.offset for i in range(BATCH)]
        self._flags_word = [(o + _MsgHdr.msg_flags.offset) // 4 for o in header_offsets]
        self._namelen_word = [(o + _MsgHdr.msg_namelen.offset) // 4 for o in header_offsets]
        # size_t is unsigned long on the LP64 systems that have recvmmsg.
        self._send_iov_words = memoryview(self._send_iov).cast("B").cast("L")
        assert self._send_iov_words.itemsize == ctypes.sizeof(ctypes.c_size_t)
        iov_stride = ctypes.sizeof(_IoVec) // ctypes.sizeof(ctypes.c_size_t)
        length_field = _IoVec.iov_len.offset // ctypes.sizeof(ctypes.c_size_t)
        self._iov_length_word = [i * iov_stride + length_field for i in range(BATCH)]
        self._received_last = BATCH  # entries whose address lengths the kernel changed

    def on_readable(self) -> None:
        for _ in range(MAX_BATCHES_PER_WAKEUP):
            if self._one_batch() < BATCH:
                return

    def _one_batch(self) -> int:
        """Receive up to BATCH datagrams and send their replies; how many arrived."""
        words = self._receive_words
        namelen_word = self._namelen_word
        for index in range(self._received_last):
            # The kernel overwrote the address length of each datagram it filled in.
            words[namelen_word[index]] = SOCKADDR_SPACE
        count = int(self._recvmmsg(self.fd, self._receive, BATCH, MSG_DONTWAIT, None))
        self._received_last = max(count, 0)
        if count <= 0:
            return 0
        arrived = time.perf_counter()
        queries = self._query_view
        replies = self._reply_view
        send_words = self._send_iov_words
        length_word = self._length_word
        flags_word = self._flags_word
        iov_length_word = self._iov_length_word
        handler = self.handler
        answer = handler.answer
        limiter = self.limiter
        if limiter is not None:
            limiter.new_second(int(arrived))
            counts = limiter.sent  # this second's, as new_second left it
            rate = limiter.rate
            # Each peer's address as an integer (see rrl: sources), for the whole
            # batch at once: a strided view's tolist() costs less than indexing.
            addresses = self._address_words
            stride = self._address_stride
            if self.ipv6:
                lows = addresses[1 : count * stride : stride].tolist()
                highs = addresses[2 : count * stride : stride].tolist()
                sources = [
                    low | high << 64 | rrl.IPV6 for low, high in zip(lows, highs, strict=True)
                ]
                network_mask = limiter.ipv6_mask
                (exempt_mask, exempt_network), exempt_more = (
                    limiter.exempt_first_ipv6,
                    limiter.exempt_more_ipv6,
                )
            else:
                sources = addresses[1 : count * stride : stride].tolist()
                network_mask = limiter.ipv4_mask
                (exempt_mask, exempt_network), exempt_more = (
                    limiter.exempt_first_ipv4,
                    limiter.exempt_more_ipv4,
                )
        ready = 0
        for index in range(count):
            start = index * QUERY_BUFFER
            query = bytes(queries[start : start + words[length_word[index]]])
            try:
                if words[flags_word[index]] & MSG_TRUNC:
                    reply = handler.answer_oversized(query)
                else:
                    reply = answer(query)
            except Exception:  # a bug must cost one query, never the batch or the server
                log.exception("query_failed", transport="udp", size=len(query))
                continue
            if reply is None:
                continue
            if limiter is not None:
                # Response rate limiting: rrl.ResponseRateLimiter.judge written out,
                # as it runs for every reply and a call would cost as much as the
                # counting.
                source = sources[index]
                if source & exempt_mask == exempt_network or (
                    exempt_more and limiter.exempt(source)
                ):
                    verdict = 0
                else:
                    pair = (source & network_mask, handler.limit_key)
                    sent = counts.get(pair)
                    if sent is None:
                        verdict = limiter.first_reply(pair)
                    elif sent < rate:
                        counts[pair] = sent + 1
                        verdict = 0
                    else:
                        verdict = limiter.over_limit(pair, sent + 1)
                if verdict:
                    if verdict == rrl.DROP:
                        continue
                    reply = slip_reply(reply)
            if ready != index:
                # An earlier query was dropped: aim this reply at its own sender.
                self._send[ready].msg_hdr.msg_name = self._address_base + index * SOCKADDR_SPACE
            offset = ready * REPLY_BUFFER
            replies[offset : offset + len(reply)] = reply
            send_words[iov_length_word[ready]] = len(reply)
            ready += 1
        if ready:
            self._flush(ready)
            if ready != count:
                for index in range(ready):  # restore the one-to-one address mapping
                    self._send[index].msg_hdr.msg_name = self._address_base + index * SOCKADDR_SPACE
        took = time.perf_counter() - arrived
        counters = self.counters
        counters[querystats.latency_bucket(took)] += count
        counters[querystats.LATENCY_SUM] += int(took * 1_000_000) * count
        return count

    def _flush(self, ready: int) -> None:
        sent = self._sendmmsg(self.fd, self._send, ready, MSG_DONTWAIT)
        if sent < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EWOULDBLOCK):
            # A send error (e.g. an ICMP-reported unreachable peer): replies are best
            # effort over UDP, as with sendto; the clients will retry.
            return
