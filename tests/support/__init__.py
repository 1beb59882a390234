"""Shared test helpers: start fodns, call its API, reach its workers, sign with its key.

Every test module takes these from here (`from tests.support import ...`); no test
module imports another. Fixtures live in tests/conftest.py and are built on these.
"""

from tests.support.api import Api, api_request, expect_status, http_exchange, run_cli
from tests.support.contract import contract_run
from tests.support.net import free_port, loopback_v6_available
from tests.support.process import (
    EXAMPLE_ZONE,
    REPOSITORY,
    TEST_ZONES,
    WIRE_ZONES,
    Fleet,
    FodnsProcess,
    example_fodns,
    file_mode,
    serving,
    start_fodns,
    start_with_config,
    wait_for,
    write_config,
)
from tests.support.tsig import KEYRING, SECRET, TSIG_XFR_TABLE, keyring_for, tsig_table
from tests.support.webhooks import HANG, Received, Receiver, answering
from tests.support.wire import (
    answer_data,
    ask_every_worker,
    framed,
    read_framed,
    recv_exactly,
    tcp_exchange,
)

__all__ = [
    "EXAMPLE_ZONE",
    "HANG",
    "KEYRING",
    "REPOSITORY",
    "SECRET",
    "TEST_ZONES",
    "TSIG_XFR_TABLE",
    "WIRE_ZONES",
    "Api",
    "Fleet",
    "FodnsProcess",
    "Received",
    "Receiver",
    "answer_data",
    "answering",
    "api_request",
    "ask_every_worker",
    "contract_run",
    "example_fodns",
    "expect_status",
    "file_mode",
    "framed",
    "free_port",
    "http_exchange",
    "keyring_for",
    "loopback_v6_available",
    "read_framed",
    "recv_exactly",
    "run_cli",
    "serving",
    "start_fodns",
    "start_with_config",
    "tcp_exchange",
    "tsig_table",
    "wait_for",
    "write_config",
]
