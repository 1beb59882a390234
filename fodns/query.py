"""Query handling: one datagram or TCP message in, reply bytes (or None: drop) out.

The fast path takes the common shape of a query: QUERY opcode, one question,
no answer or authority records, at most one OPT with version 0. It folds the
question's case, reads the prebuilt reply from the table and joins ID, header,
the query's own question and the prebuilt tail: no parsing beyond slicing, no
allocation beyond the reply. Everything else (odd shapes, EDNS errors,
unknown opcodes, garbage) goes to the slow path, which parses with dnspython
and answers FORMERR, NOTIMP, BADVERS, REFUSED or nothing as the RFCs say.
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rdataclass
import dns.rdatatype

from fodns import querystats
from fodns.config import DEFAULT_UDP_PAYLOAD
from fodns.rrl import ERROR_KEY
from fodns.table import AnswerTable
from fodns.tsig import MAX_MAC_SIZE, Keyring, check_request, sign_reply
from fodns.wire import (
    BADVERS,
    CLASS_IN,
    EDNS_DO,
    FORMERR,
    MAX_TCP_MESSAGE,
    MIN_UDP_PAYLOAD,
    NOTAUTH,
    NOTIMP,
    REFUSED,
    Template,
    error_reply,
    name_end,
    opt_record,
    reply_limit,
    truncated,
    unsigned_tsig_error,
)
from fodns.zone import name_to_wire

# Header bytes 4-9 of a plain query: QDCOUNT 1, ANCOUNT 0, NSCOUNT 0.
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
_NO_ADDITIONAL = b"\x00\x00"
_ONE_ADDITIONAL = b"\x00\x01"
_OPT_START = b"\x00\x00\x29"  # root owner, TYPE 41 (RFC 6891 §6.1.2)
EDNS_FORMS_REMEMBERED = 4096  # distinct payload/DO combinations seen; bounded against floods
# QTYPEs 41 (OPT) and 249-254 (TKEY, TSIG, IXFR, AXFR, MAILB, MAILA) never take
# the fast path's miss branch: the slow path gives each its own reply.
_SPECIAL_QTYPES = frozenset({41, 249, 250, 251, 252, 253, 254})
_TRANSFER_QTYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
_SOA_IN = b"\x00\x06\x00\x01"  # QTYPE SOA, QCLASS IN: the key of a zone's SOA answer
_MAIL_QTYPES = frozenset({dns.rdatatype.MAILA, dns.rdatatype.MAILB})
_NOT_A_QTYPE = frozenset({dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY})


class QueryHandler:
    """Answers queries from the current table; `table` is replaced whole on reload.

    After each reply, `limit_key` says what kind of reply it was, as response rate
    limiting counts it (see rrl): the UDP transports read it right after `answer`.
    An attribute rather than a second return value, so the hot path builds no tuple.
    """

    def __init__(
        self,
        table: AnswerTable,
        udp_payload: int = DEFAULT_UDP_PAYLOAD,
        keyring: Keyring | None = None,
    ) -> None:
        self.table = table
        self.udp_payload = udp_payload
        self.keyring = keyring  # TSIG keys a signed query may use (the [tsig] tables)
        self.counters = querystats.new_counters()
        self._opt_plain = opt_record(udp_payload, 0)
        self._opt_do = opt_record(udp_payload, EDNS_DO)
        # OPT record bytes of queries -> (our OPT, UDP limit); see _read_opt.
        self._edns_seen: dict[bytes, tuple[bytes, int]] = {}
        self.limit_key = ERROR_KEY

    def answer(self, data: bytes, udp: bool = True) -> bytes | None:
        end = data.find(0, 12)
        if end < 0 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION:
            return self._answer_slowly(data, udp)
        question_end = end + 5
        if len(data) == question_end and data[10:12] == _NO_ADDITIONAL:
            opt = b""
            limit = MIN_UDP_PAYLOAD if udp else MAX_TCP_MESSAGE
        else:
            edns = (
                self._edns_seen.get(data[question_end:]) if data[10:12] == _ONE_ADDITIONAL else None
            )
            if edns is None:
                edns = self._read_opt(data, question_end)
                if edns is None:
                    return self._answer_slowly(data, udp)
            opt, udp_limit = edns
            limit = udp_limit if udp else MAX_TCP_MESSAGE

        key = data[12 : end + 1].lower() + data[end + 1 : question_end]
        table = self.table
        template = table.answers.get(key) or table.misses.get(key)
        if template is None:
            template = self._resolve(data, end, key)
            if template is None:
                return self._answer_slowly(data, udp)
        self.counters[template.stat] += 1
        self.limit_key = template.limit_key or key

        flag_index = (data[2] & 1) | ((data[3] & 0x10) >> 3)
        if opt:
            reply = b"".join(
                (
                    data[:2],
                    template.headers_edns[flag_index],
                    data[12:question_end],
                    template.tail,
                    opt,
                )
            )
        else:
            reply = data[:2] + template.headers[flag_index] + data[12:question_end] + template.tail
        if len(reply) > limit:
            return truncated(template, data[:2], flag_index, data[12:question_end], opt, limit)
        return reply

    def answer_oversized(self, data: bytes) -> bytes | None:
        """A datagram larger than any query we accept, seen only in part: FORMERR."""
        if len(data) < 12 or data[2] & 0x80:
            self.counters[querystats.DROPPED] += 1
            return None
        return self._error(data, FORMERR, 0)

    def _read_opt(self, data: bytes, question_end: int) -> tuple[bytes, int] | None:
        """Our OPT and UDP size limit for a query whose one additional record is a
        plain version-0 OPT (RFC 6891 §6.1.2), or None for the slow path to judge.

        Resolvers send the same OPT bytes every time, so forms without options are
        remembered: the next query with them costs one dict lookup.
        """
        size = len(data)
        if (
            data[10:12] != _ONE_ADDITIONAL
            or data[question_end : question_end + 3] != _OPT_START
            or size < question_end + 11
            or data[question_end + 6] != 0  # EDNS version 0; others get BADVERS
            or size != question_end + 11 + (data[question_end + 9] << 8 | data[question_end + 10])
        ):
            return None
        opt = self._opt_do if data[question_end + 7] & 0x80 else self._opt_plain
        client_payload = data[question_end + 3] << 8 | data[question_end + 4]
        edns = (opt, max(MIN_UDP_PAYLOAD, min(client_payload, self.udp_payload)))
        if size == question_end + 11:
            if len(self._edns_seen) >= EDNS_FORMS_REMEMBERED:
                self._edns_seen.clear()
            self._edns_seen[data[question_end:]] = edns
        return edns

    def _resolve(self, data: bytes, end: int, key: bytes) -> Template | None:
        """A question with no prebuilt answer: NODATA, NXDOMAIN, wildcard, referral...

        The result is remembered by the table under the exact question, with its
        counter slot, so a repeated miss costs what a hit does. None: the slow
        path must judge (another class, a meta type, a name that is not plain).
        """
        qtype = data[end + 1] << 8 | data[end + 2]
        if data[end + 3 : end + 5] != CLASS_IN or qtype in _SPECIAL_QTYPES or name_end(data) != end:
            return None
        template = self.table.resolve(key[:-4], qtype)
        template = template._replace(stat=querystats.slot(qtype, template.rcode))
        self.table.remember_miss(key, template)
        return template

    # ---- the slow path -------------------------------------------------------------

    def _answer_slowly(self, data: bytes, udp: bool) -> bytes | None:
        counters = self.counters
        if len(data) < 12 or data[2] & 0x80:
            # No header to answer, or a response: never reply to a reply (RFC 1035 §7.3).
            counters[querystats.DROPPED] += 1
            return None
        try:
            # keyring=False: read a TSIG without verifying it; we answer it below.
            message = dns.message.from_wire(data, keyring=False)
        except Exception as exc:
            if data[2] & 0x78:
                # An opcode we do not implement need not follow the QUERY layout (an
                # UPDATE's zone section is an SOA question, RFC 2136 §3.1.1; DSO puts TLVs
                # after empty sections, RFC 8490 §5.4): it is NOTIMP, not FORMERR
                # (RFC 1035 §4.1.1; RFC 8490 §5.1 reads NOTIMP as "no DSO here").
                return self._error(data, NOTIMP, 0)
            if isinstance(exc, dns.message.BadEDNS):
                # An OPT out of place, not at the root, or twice (RFC 6891 §6.1.1).
                return self._error(data, FORMERR, 0, opt=self._opt_plain)
            return self._error(data, FORMERR, 0)

        if message.tsig is None or message.keyname is None:
            return self._answer_parsed(data, udp, message)
        # RFC 8945 §5.2: check the signature; a good one gets a signed reply (§5.3).
        question = self._question_bytes(data, message)
        qtype = message.question[0].rdtype if len(message.question) == 1 else 0
        verdict = check_request(data, message, self.keyring)
        key = verdict.key
        if verdict.error:
            opt = self._our_opt(message)[0]
            if key is not None:
                # BADTIME: the MAC was good, so the error is signed (§5.2.3).
                refusal = self._error(data, NOTAUTH, qtype, question, opt)
                return sign_reply(refusal, key, message.tsig[0], message.mac or b"", verdict.error)
            # §5.2.1, §5.2.2: NOTAUTH with an unsigned TSIG carrying the error.
            tsig = unsigned_tsig_error(message.keyname, message.tsig[0], verdict.error)
            return self._error(data, NOTAUTH, qtype, question, opt, tsig=tsig)
        assert key is not None
        # Room for our TSIG record: the query's, with a MAC of up to 64 octets.
        reserve = len(unsigned_tsig_error(message.keyname, message.tsig[0], 0)) + MAX_MAC_SIZE
        reply = self._answer_parsed(data, udp, message, reserve if udp else 0)
        return reply and sign_reply(reply, key, message.tsig[0], message.mac or b"")

    def _answer_parsed(
        self, data: bytes, udp: bool, message: dns.message.Message, reserve: int = 0
    ) -> bytes | None:
        """The reply to a query dnspython could read; `reserve` octets of a UDP reply's
        room are kept for a TSIG record."""
        counters = self.counters
        opt, do_bit = self._our_opt(message)
        question = self._question_bytes(data, message)
        qtype = message.question[0].rdtype if len(message.question) == 1 else 0

        if message.opcode() != dns.opcode.QUERY:
            return self._error(data, NOTIMP, qtype, question, opt)
        if message.edns > 0:
            # RFC 6891 §6.1.3: we speak version 0 only; say so with BADVERS.
            # RFC 3225 §3 (and RFC 8906 §8.2.9): the DO bit is copied here too.
            badvers_opt = opt_record(self.udp_payload, do_bit, BADVERS)
            return self._error(data, BADVERS, qtype, question, badvers_opt, rcode_stat=BADVERS)
        # An IXFR query carries the client's SOA in authority (RFC 1995 §3): well formed.
        stray_authority = message.authority and qtype != dns.rdatatype.IXFR
        if len(message.question) != 1 or message.answer or stray_authority:
            return self._error(
                data, FORMERR, qtype, b"" if len(message.question) != 1 else question, opt
            )
        rdclass = message.question[0].rdclass
        if qtype in _NOT_A_QTYPE:
            return self._error(data, FORMERR, qtype, question, opt)
        lname = name_to_wire(message.question[0].name).lower()
        table = self.table
        answer_key, answer_type = lname + question[-4:], qtype
        if rdclass != dns.rdataclass.IN or qtype in _TRANSFER_QTYPES:
            # Only IN is served. Transfers over TCP go to transfer.py before this; over
            # UDP AXFR is refused (RFC 5936 §4.2: TCP only). IXFR over UDP gets "a
            # single SOA record of the server's current version to inform the client
            # that a TCP query should be initiated" (RFC 1995 §2: fodns sends its
            # differences over TCP only), which also tells a current secondary it is
            # current; REFUSED instead makes a client trying UDP first give up. That
            # SOA is what any SOA query gets: nothing allow_transfer guards.
            udp_ixfr = udp and qtype == dns.rdatatype.IXFR and rdclass == dns.rdataclass.IN
            if not (udp_ixfr and lname in table.zones):
                return self._error(data, REFUSED, qtype, question, opt)
            answer_key, answer_type = lname + _SOA_IN, dns.rdatatype.SOA
        if qtype in _MAIL_QTYPES:
            return self._error(data, NOTIMP, qtype, question, opt)

        template = table.answers.get(answer_key) or table.resolve(lname, answer_type)
        counters[querystats.slot(qtype, template.rcode)] += 1
        self.limit_key = template.limit_key or lname + question[-4:]
        flag_index = (data[2] & 1) | ((data[3] & 0x10) >> 3)
        headers = template.headers_edns if opt else template.headers
        reply = b"".join((data[:2], headers[flag_index], question, template.tail, opt))
        limit = (
            reply_limit(message.payload if opt else None, self.udp_payload) - reserve
            if udp
            else MAX_TCP_MESSAGE
        )
        if len(reply) > limit:
            return truncated(template, data[:2], flag_index, question, opt, limit)
        return reply

    def _our_opt(self, message: dns.message.Message) -> tuple[bytes, int]:
        """Our OPT record for a reply (none if the query had none), and its DO bit."""
        if message.edns < 0:
            return b"", 0
        do_bit = EDNS_DO if message.ednsflags & dns.flags.DO else 0
        return (self._opt_do if do_bit else self._opt_plain), do_bit

    def _error(
        self,
        data: bytes,
        rcode: int,
        qtype: int,
        question: bytes = b"",
        opt: bytes = b"",
        rcode_stat: int | None = None,
        tsig: bytes = b"",
    ) -> bytes:
        self.counters[querystats.slot(qtype, rcode if rcode_stat is None else rcode_stat)] += 1
        self.limit_key = ERROR_KEY
        return error_reply(data, rcode, question, opt, tsig)

    @staticmethod
    def _question_bytes(data: bytes, message: dns.message.Message) -> bytes:
        """The question as the query sent it (its case kept), or rebuilt if it was compressed."""
        if len(message.question) != 1:
            return b""
        end = name_end(data)
        if end > 0:
            return data[12 : end + 5]
        question = message.question[0]
        return (
            name_to_wire(question.name)
            + question.rdtype.to_bytes(2, "big")
            + question.rdclass.to_bytes(2, "big")
        )
