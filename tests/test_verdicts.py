"""The rules of health verdicts and failover (fodns/verdicts.py), table by table:
an address's rise and fall, an app's min_healthy, the probes' quorum and aging,
and every branch of a group's decision."""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fodns import verdicts
from fodns.model import Side
from fodns.verdicts import (
    AddressVerdict,
    Decision,
    HealthState,
    Pin,
    Policy,
    ProbeView,
    SideHealth,
    StateSince,
    app_state,
    decide,
    down_evidence,
    probes_seeing,
    quorum_state,
)

# 2024-05-01 12:00:00 UTC: reasons show times of day, so a round one reads well.
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0

# --- An address: fall and rise ------------------------------------------------------


def replay(verdict: AddressVerdict, outcomes: str) -> list[HealthState | None]:
    """Record 'S' (success) and 'F' (failure) checks one second apart; what each said."""
    return [verdict.record(mark == "S", NOW + i) for i, mark in enumerate(outcomes)]


@pytest.mark.parametrize(
    ("fall", "rise", "outcomes", "transitions", "final"),
    [
        pytest.param(3, 2, "FF", {}, "unknown", id="unknown-2-failures-of-3-stays-unknown"),
        pytest.param(3, 2, "FFF", {2: "down"}, "down", id="unknown-3-failures-down"),
        pytest.param(3, 2, "S", {}, "unknown", id="unknown-1-success-of-2-stays-unknown"),
        pytest.param(3, 2, "SS", {1: "up"}, "up", id="unknown-2-successes-up"),
        pytest.param(1, 1, "F", {0: "down"}, "down", id="fall-1-first-failure-down"),
        pytest.param(1, 1, "S", {0: "up"}, "up", id="rise-1-first-success-up"),
        pytest.param(3, 2, "SSFF", {1: "up"}, "up", id="up-2-failures-stays-up"),
        pytest.param(3, 2, "SSFFF", {1: "up", 4: "down"}, "down", id="up-3-failures-down"),
        pytest.param(3, 2, "FFFS", {2: "down"}, "down", id="down-1-success-stays-down"),
        pytest.param(3, 2, "FFFSS", {2: "down", 4: "up"}, "up", id="down-2-successes-up"),
        pytest.param(3, 5, "FFFSSSSS", {2: "down", 7: "up"}, "up", id="rise-5-separate-from-fall"),
        pytest.param(3, 2, "FFSFFF", {5: "down"}, "down", id="success-resets-failure-run"),
        pytest.param(3, 2, "FFFSFSS", {2: "down", 6: "up"}, "up", id="failure-resets-success-run"),
        pytest.param(3, 2, "FFFFFF", {2: "down"}, "down", id="more-failures-no-new-transition"),
        pytest.param(3, 2, "SSSSS", {1: "up"}, "up", id="more-successes-no-new-transition"),
        pytest.param(3, 2, "FS" * 20, {}, "unknown", id="alternating-from-unknown-never-decides"),
        pytest.param(3, 2, "SS" + "FS" * 20, {1: "up"}, "up", id="alternating-never-goes-down"),
        pytest.param(3, 2, "FFF" + "SF" * 20, {2: "down"}, "down", id="alternating-never-comes-up"),
    ],
)
def test_an_address_moves_on_runs_of_fall_failures_and_rise_successes(
    fall: int, rise: int, outcomes: str, transitions: dict[int, HealthState], final: HealthState
) -> None:
    verdict = AddressVerdict(fall=fall, rise=rise)
    said = replay(verdict, outcomes)
    assert {i: state for i, state in enumerate(said) if state is not None} == transitions
    assert verdict.state == final
    # `since` is the time of the last transition, None while nothing was decided.
    last = max(transitions, default=None)
    assert verdict.since == (None if last is None else NOW + last)


def test_a_failing_address_tells_what_failed_and_how_often() -> None:
    refused = AddressVerdict(fall=3, rise=2)
    for _ in range(4):
        refused.record(False, NOW, "connection refused")
    timed_out = AddressVerdict(fall=1, rise=2)
    timed_out.record(False, NOW, "timed out after 5 s")
    healthy = AddressVerdict(fall=3, rise=2)
    healthy.record(True, NOW)
    assert refused.evidence("192.0.2.10") == "192.0.2.10: connection refused (4 checks)"
    assert timed_out.evidence("192.0.2.11") == "192.0.2.11: timed out after 5 s (1 check)"
    # Only the addresses that are down are evidence, in address order.
    assert down_evidence(
        {"192.0.2.11": timed_out, "192.0.2.12": healthy, "192.0.2.10": refused}
    ) == ("192.0.2.10: connection refused (4 checks); 192.0.2.11: timed out after 5 s (1 check)")


# --- An app as one probe sees it: min_healthy -----------------------------------------


@pytest.mark.parametrize(
    ("states", "min_healthy", "expected"),
    [
        pytest.param(["up"], 1, "up", id="one-up"),
        pytest.param(["down"], 1, "down", id="one-down"),
        pytest.param(["unknown"], 1, "unknown", id="one-unknown"),
        pytest.param(["up", "down"], 1, "up", id="1-of-2-up-enough-for-1"),
        pytest.param(["down", "unknown"], 1, "unknown", id="unknown-could-still-be-up"),
        pytest.param(["down", "down"], 1, "down", id="all-down"),
        pytest.param(["up", "down"], 2, "down", id="1-up-1-down-min-2-cannot-be-reached"),
        pytest.param(["up", "unknown"], 2, "unknown", id="1-up-1-unknown-min-2-undecided"),
        pytest.param(["up", "up", "down"], 2, "up", id="2-of-3-up-min-2"),
        pytest.param(["up", "down", "down"], 2, "down", id="1-of-3-up-min-2"),
        pytest.param(["up", "unknown", "down"], 2, "unknown", id="1-up-1-unknown-1-down-min-2"),
        pytest.param(["up", "up"], 3, "down", id="fewer-addresses-than-min-healthy"),
        pytest.param([], 1, "unknown", id="no-addresses-no-evidence"),
    ],
)
def test_an_app_is_up_while_min_healthy_addresses_are(
    states: list[HealthState], min_healthy: int, expected: HealthState
) -> None:
    assert app_state(states, min_healthy) == expected


def test_an_app_remembers_since_when_it_is_up() -> None:
    app = StateSince()
    assert app.observe("unknown", NOW) is None and app.up_since is None
    assert app.observe("up", NOW + 10) == "up"
    assert app.observe("up", NOW + 20) is None  # still up: since does not move
    assert app.up_since == NOW + 10
    assert app.observe("down", NOW + 30) == "down"
    assert app.up_since is None and app.since == NOW + 30


# --- The probes: quorum and aging -----------------------------------------------------


def local(state: HealthState, reported_at: float = NOW) -> ProbeView:
    return ProbeView(state, reported_at, interval=10.0, local=True)


def remote(state: HealthState, age: float = 0.0) -> ProbeView:
    return ProbeView(state, NOW - age, interval=10.0)


@pytest.mark.parametrize(
    ("views", "quorum", "expected"),
    [
        pytest.param({"local": local("down")}, 1, "down", id="local-alone-down"),
        pytest.param({"local": local("up")}, 1, "up", id="local-alone-up"),
        pytest.param({"local": local("unknown")}, 1, "unknown", id="local-alone-unknown"),
        pytest.param(
            {"local": local("down", reported_at=NOW - 1000)},
            1,
            "down",
            id="local-never-ages-out",
        ),
        pytest.param({"local": local("up")}, 2, "unknown", id="quorum-above-live-probes"),
        pytest.param(
            {"local": local("down"), "eu-1": remote("up")}, 1, "down", id="1-of-2-down-quorum-1"
        ),
        pytest.param(
            {"local": local("down"), "eu-1": remote("up")},
            2,
            "unknown",
            id="1-of-2-down-quorum-2",
        ),
        pytest.param(
            {"local": local("down"), "eu-1": remote("down")},
            2,
            "down",
            id="2-of-2-down-quorum-2",
        ),
        pytest.param(
            {"local": local("up"), "eu-1": remote("up")}, 2, "up", id="2-of-2-up-quorum-2"
        ),
        pytest.param(
            {"local": local("up"), "eu-1": remote("up"), "us-1": remote("down")},
            1,
            "down",
            id="down-quorum-beats-up-quorum",
        ),
        pytest.param(
            {"local": local("down"), "eu-1": remote("down", age=29.9)},
            2,
            "down",
            id="remote-within-3-intervals-counts",
        ),
        pytest.param(
            {"local": local("down"), "eu-1": remote("down", age=30.0)},
            2,
            "unknown",
            id="remote-silent-3-intervals-aged-out",
        ),
        pytest.param(
            {"local": local("unknown"), "eu-1": remote("up", age=45.0)},
            1,
            "unknown",
            id="aged-out-up-does-not-count",
        ),
        pytest.param(
            {"eu-1": remote("down", age=31.0), "us-1": remote("down", age=31.0)},
            1,
            "unknown",
            id="all-remotes-aged-out",
        ),
    ],
)
def test_an_app_is_down_for_decisions_when_quorum_live_probes_see_it_down(
    views: dict[str, ProbeView], quorum: int, expected: HealthState
) -> None:
    assert quorum_state(views, quorum, NOW) == expected


def test_a_silent_probe_ages_out_after_3_of_its_intervals() -> None:
    views = {"local": local("down"), "eu-1": ProbeView("down", NOW, interval=20.0)}
    assert quorum_state(views, 2, NOW + 59.9) == "down"
    assert probes_seeing(views, "down", NOW + 59.9) == ["eu-1", "local"]
    assert quorum_state(views, 2, NOW + 60.0) == "unknown"
    assert probes_seeing(views, "down", NOW + 60.0) == ["local"]


# --- A group's decision ---------------------------------------------------------------

EVIDENCE = "192.0.2.10: connection refused (3 checks)"
PRIMARY_UP = SideHealth("shop-eu", checked=True, state="up", up_since=NOW - HOUR)
PRIMARY_DOWN = SideHealth("shop-eu", checked=True, state="down", evidence=EVIDENCE)
PRIMARY_UNKNOWN = SideHealth("shop-eu", checked=True, state="unknown")
PRIMARY_UNCHECKED = SideHealth("shop-eu", checked=False, state="unknown")
BACKUP_UP = SideHealth("shop-us", checked=True, state="up", up_since=NOW - HOUR)
BACKUP_DOWN = SideHealth("shop-us", checked=True, state="down", evidence="198.51.100.7: HTTP 503")
BACKUP_UNKNOWN = SideHealth("shop-us", checked=True, state="unknown")
BACKUP_UNCHECKED = SideHealth("shop-us", checked=False, state="unknown")
NO_APP = SideHealth(None, checked=False, state="unknown")

MANUAL = Policy()
AUTO = Policy(failover="auto", failback="auto")
AUTO_NO_FAILBACK = Policy(failover="auto", failback="manual")


def primary_up_since(seconds_ago: float) -> SideHealth:
    return SideHealth("shop-eu", checked=True, state="up", up_since=NOW - seconds_ago)


def ago(*seconds: float) -> tuple[float, ...]:
    return tuple(NOW - s for s in seconds)


@dataclass
class Case:
    active: Side
    primary: SideHealth | None
    backup: SideHealth | None
    policy: Policy
    state: str
    to: Side | None
    says: tuple[str, ...]  # what the reason must contain
    pin: Pin | None = None
    switches: tuple[float, ...] = field(default_factory=tuple)


DECISIONS = [
    # Layer 1: a person's pin.
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "pinned",
            None,
            ("pinned to primary until unpinned (db migration)",),
            pin=Pin("primary", None, "db migration"),
        ),
        id="pin-holds-a-down-side",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_UP,
            BACKUP_UP,
            AUTO,
            "pinned",
            "backup",
            ("pinned to backup until 12:30 UTC", "moving to backup"),
            pin=Pin("backup", NOW + 1800),
        ),
        id="pin-elsewhere-moves-there",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "switch",
            "backup",
            ("switched to backup",),
            pin=Pin("primary", NOW - 1),
        ),
        id="expired-pin-health-decides",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "switch",
            "backup",
            ("switched to backup",),
            pin=Pin("primary", NOW),
        ),
        id="pin-ends-at-its-until",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            MANUAL,
            "pinned",
            None,
            ("pinned to primary",),
            pin=Pin("primary", None),
        ),
        id="pin-outranks-manual",
    ),
    # Manual groups.
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            MANUAL,
            "manual",
            None,
            ("failover is manual", f"primary shop-eu is down ({EVIDENCE})"),
        ),
        id="manual-never-fails-over",
    ),
    pytest.param(
        Case(
            "backup",
            PRIMARY_UP,
            BACKUP_UP,
            Policy(failover="manual", failback="auto"),
            "manual",
            None,
            ("failover is manual",),
        ),
        id="manual-never-fails-back",
    ),
    # Layer 2: health, automatic failover.
    pytest.param(
        Case("primary", PRIMARY_UP, BACKUP_UP, AUTO, "ok", None, ("primary shop-eu is up",)),
        id="active-up-ok",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "switch",
            "backup",
            (f"primary shop-eu is down ({EVIDENCE}) and backup shop-us is up: switched to backup",),
        ),
        id="active-down-other-up-switch",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_DOWN,
            AUTO,
            "both_down",
            None,
            ("backup shop-us is down (198.51.100.7: HTTP 503)", "both sides are down"),
        ),
        id="both-down",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UNKNOWN,
            AUTO,
            "no_target",
            None,
            ("backup shop-us's health is unknown", "staying on primary"),
        ),
        id="no-target-backup-unknown",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UNCHECKED,
            AUTO,
            "no_target",
            None,
            ("backup shop-us has no health check", "staying on primary"),
        ),
        id="no-target-backup-unchecked",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            SideHealth("shop-us", checked=False, state="up"),
            AUTO,
            "no_target",
            None,
            ("backup shop-us has no health check",),
        ),
        id="no-target-up-without-a-check-is-not-up",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            NO_APP,
            AUTO,
            "no_target",
            None,
            ("the group has no backup app", "staying on primary"),
        ),
        id="no-target-no-backup-app",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            None,
            AUTO,
            "no_target",
            None,
            ("the group has no backup app",),
        ),
        id="no-target-backup-missing-from-sides",
    ),
    pytest.param(
        Case("primary", PRIMARY_UNKNOWN, BACKUP_UP, AUTO, "ok", None, ("health is unknown",)),
        id="active-unknown-never-switches",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_UNCHECKED,
            BACKUP_UP,
            AUTO,
            "ok",
            None,
            ("primary shop-eu has no health check",),
        ),
        id="active-unchecked-never-switches",
    ),
    pytest.param(
        Case(
            "backup",
            primary_up_since(10),
            BACKUP_DOWN,
            AUTO_NO_FAILBACK,
            "switch",
            "primary",
            ("backup shop-us is down", "primary shop-eu is up: switched to primary"),
        ),
        id="active-backup-down-fails-over-to-primary-without-hold-down",
    ),
    pytest.param(
        Case(
            "backup",
            PRIMARY_DOWN,
            BACKUP_DOWN,
            AUTO,
            "both_down",
            None,
            ("staying on backup",),
        ),
        id="both-down-on-backup",
    ),
    # Failback.
    pytest.param(
        Case(
            "backup",
            primary_up_since(299),
            BACKUP_UP,
            AUTO,
            "waiting",
            None,
            ("primary shop-eu has been up since 11:55 UTC", "failing back at 12:01 UTC"),
        ),
        id="failback-waits-for-hold-down",
    ),
    pytest.param(
        Case(
            "backup",
            primary_up_since(300),
            BACKUP_UP,
            AUTO,
            "switch",
            "primary",
            ("past the 300 s hold-down: switched to primary",),
        ),
        id="failback-after-hold-down-backup-still-up",
    ),
    pytest.param(
        Case(
            "backup",
            primary_up_since(20),
            BACKUP_UP,
            Policy(failover="auto", failback="auto", hold_down=10),
            "switch",
            "primary",
            ("past the 10 s hold-down",),
        ),
        id="failback-own-hold-down",
    ),
    pytest.param(
        Case("backup", PRIMARY_UP, BACKUP_UP, AUTO_NO_FAILBACK, "ok", None, ("staying on backup",)),
        id="failback-manual-never",
    ),
    pytest.param(
        Case(
            "backup",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "ok",
            None,
            ("primary shop-eu is down", "failback waits"),
        ),
        id="failback-primary-down-ok",
    ),
    pytest.param(
        Case("backup", PRIMARY_UNKNOWN, BACKUP_UP, AUTO, "ok", None, ("failback waits",)),
        id="failback-primary-unknown-ok",
    ),
    pytest.param(
        Case("backup", PRIMARY_UNCHECKED, BACKUP_UP, AUTO, "ok", None, ("no health check",)),
        id="failback-primary-unchecked-ok",
    ),
    # The hourly limit of automatic switches.
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "switch",
            "backup",
            ("switched to backup",),
            switches=ago(100, 200, 300),
        ),
        id="3-switches-in-the-hour-switch",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "held",
            None,
            (
                "would switch to backup, but 4 automatic switches in the last hour; "
                "held until 12:01 UTC or a person acts",
            ),
            switches=ago(900, 1800, 2700, 3599),
        ),
        id="4-switches-in-the-hour-held",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "switch",
            "backup",
            ("switched to backup",),
            switches=ago(900, 1800, 2700, 3600),
        ),
        id="5th-switch-once-the-oldest-is-an-hour-old",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            AUTO,
            "switch",
            "backup",
            ("switched to backup",),
            switches=ago(900, 1800, 2700, 7200, 10800),
        ),
        id="older-switches-do-not-count",
    ),
    pytest.param(
        Case(
            "backup",
            PRIMARY_UP,
            BACKUP_UP,
            AUTO,
            "held",
            None,
            ("would switch to primary, but 4 automatic switches",),
            switches=ago(60, 120, 180, 240),
        ),
        id="failback-held-too",
    ),
    pytest.param(
        Case(
            "primary",
            PRIMARY_DOWN,
            BACKUP_UP,
            Policy(failover="auto", max_auto_switches=0),
            "held",
            None,
            ("limited to 0 an hour; held until a person acts",),
        ),
        id="no-automatic-switch-allowed",
    ),
]


def run(case: Case) -> Decision:
    sides: dict[Side, SideHealth] = {}
    if case.primary is not None:
        sides["primary"] = case.primary
    if case.backup is not None:
        sides["backup"] = case.backup
    return decide(
        active=case.active,
        sides=sides,
        policy=case.policy,
        pin=case.pin,
        auto_switch_times=case.switches,
        now=NOW,
    )


@pytest.mark.parametrize("case", DECISIONS)
def test_a_group_follows_pin_then_health_then_where_it_is(case: Case) -> None:
    decision = run(case)
    assert (decision.state, decision.to) == (case.state, case.to), decision.reason
    for words in case.says:
        assert words in decision.reason
    # Only a switch, or a pin naming the other side, says where to go.
    if decision.state == "switch":
        assert decision.to is not None
    elif decision.state != "pinned":
        assert decision.to is None


def test_the_switch_reason_names_the_evidence_and_both_apps() -> None:
    decision = decide(
        active="primary",
        sides={
            "primary": SideHealth(
                "shop-eu",
                True,
                "down",
                evidence="192.0.2.10: connection refused; 192.0.2.11: timed out after 5 s",
            ),
            "backup": BACKUP_UP,
        },
        policy=AUTO,
        pin=None,
        auto_switch_times=(),
        now=NOW,
    )
    assert decision == Decision(
        "switch",
        "backup",
        "primary shop-eu is down (192.0.2.10: connection refused; 192.0.2.11: timed out "
        "after 5 s) and backup shop-us is up: switched to backup",
    )


@pytest.mark.parametrize(
    ("switches", "held_until"),
    [
        pytest.param(ago(900, 1800, 2700, 3599), NOW + 1, id="4-in-the-hour-frees-with-oldest"),
        pytest.param(
            ago(60, 900, 1800, 2700, 3000), NOW + 900, id="5-in-the-hour-frees-with-2nd-oldest"
        ),
    ],
)
def test_a_held_switch_says_when_it_may_happen(
    switches: tuple[float, ...], held_until: float
) -> None:
    case = Case("primary", PRIMARY_DOWN, BACKUP_UP, AUTO, "held", None, (), switches=switches)
    decision = run(case)
    assert decision.state == "held" and decision.held_until == pytest.approx(held_until)
    # At that moment, and not before, the switch is made.
    later = decide(
        active="primary",
        sides={"primary": PRIMARY_DOWN, "backup": BACKUP_UP},
        policy=AUTO,
        pin=None,
        auto_switch_times=switches,
        now=held_until,
    )
    assert (later.state, later.to) == ("switch", "backup")


def test_a_pending_failback_says_when_it_is_due() -> None:
    case = Case("backup", primary_up_since(100), BACKUP_UP, AUTO, "waiting", None, ())
    decision = run(case)
    assert decision.failback_at == NOW + 200
    assert "failing back at 12:04 UTC, after the 300 s hold-down" in decision.reason


def test_a_decision_depends_only_on_its_arguments() -> None:
    """Same inputs, same decision, whatever the order of the switch times."""
    switches = list(ago(60, 900, 1800, 2700, 3000, 7200))
    first = run(Case("primary", PRIMARY_DOWN, BACKUP_UP, AUTO, "", None, (), switches=ago()))
    decisions = set()
    for seed in range(5):
        random.Random(seed).shuffle(switches)
        case = Case(
            "primary", PRIMARY_DOWN, BACKUP_UP, AUTO, "", None, (), switches=tuple(switches)
        )
        decisions.add(run(case))
    assert len(decisions) == 1 and first != next(iter(decisions))


def test_checks_to_decision_end_to_end() -> None:
    """A primary whose two addresses fail three checks in a row, as the local probe
    sees it, with a backup up: the group fails over, quoting the failures."""
    addresses = {
        "192.0.2.10": AddressVerdict(fall=3, rise=2),
        "192.0.2.11": AddressVerdict(fall=3, rise=2),
    }
    for second in range(3):
        addresses["192.0.2.10"].record(False, NOW + second, "connection refused")
        addresses["192.0.2.11"].record(False, NOW + second, "timed out after 5 s")
    seen = app_state((v.state for v in addresses.values()), min_healthy=1)
    state = quorum_state({"local": ProbeView(seen, NOW + 2, 10.0, local=True)}, 1, NOW + 2)
    primary = SideHealth("shop-eu", True, state, evidence=down_evidence(addresses))
    decision = decide(
        active="primary",
        sides={"primary": primary, "backup": BACKUP_UP},
        policy=AUTO,
        pin=None,
        auto_switch_times=(),
        now=NOW + 2,
    )
    assert decision.reason == (
        "primary shop-eu is down (192.0.2.10: connection refused (3 checks); "
        "192.0.2.11: timed out after 5 s (3 checks)) and backup shop-us is up: "
        "switched to backup"
    )


def test_the_module_does_no_io() -> None:
    """Pure: the decisions import no clock, no store, no network, no event loop."""
    tree = ast.parse(Path(verdicts.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "collections.abc",
        "dataclasses",
        "datetime",
        "math",
        "typing",
        "fodns.model",
    }
