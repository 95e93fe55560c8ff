"""The transition tables of refplat.states: consistent, complete, and what the Lua enforces."""

from __future__ import annotations

import pytest

from refplat import scripts
from refplat.model import GameServerState, SessionState
from refplat.states import (
    POWER,
    RESTART_IN_PLACE,
    SERVER_INITIAL,
    SERVER_TERMINAL,
    SERVER_TRANSITIONS,
    SESSION_INITIAL,
    SESSION_TERMINAL,
    SESSION_TRANSITIONS,
    SESSION_UNUSED,
    Owner,
    PowerSignal,
    allowed,
    lua_source,
    owners,
    reachable,
    targets,
)

GS = GameServerState
SHARED = {
    ("Allocated", "Ready"): {Owner.API, Owner.CONTROLLER},
    ("Ready", "Allocated"): {Owner.API, Owner.CONTROLLER},
}


def test_every_server_state_is_reachable_from_creating() -> None:
    assert {s.value for s in GS} == reachable(SERVER_INITIAL.value)


def test_shutdown_is_terminal_and_reachable_from_every_other_state() -> None:
    assert {GS.SHUTDOWN} == SERVER_TERMINAL
    assert frozenset() == targets(GS.SHUTDOWN.value)
    assert [] == [s for s in GS if s is not GS.SHUTDOWN and not allowed(s, GS.SHUTDOWN)]


def test_every_non_terminal_server_state_can_reach_ready_again() -> None:
    stuck = [s for s in GS if s not in SERVER_TERMINAL and GS.READY not in reachable(s.value)]

    assert [] == stuck


def test_every_transition_names_real_states_changes_state_and_says_why() -> None:
    names = {s.value for s in GS}
    bad = [t for t in SERVER_TRANSITIONS if {t.source, t.target} - names or t.source == t.target]

    assert [] == bad
    assert all(t.why for t in (*SERVER_TRANSITIONS, *SESSION_TRANSITIONS))
    assert len(SERVER_TRANSITIONS) == len(set(SERVER_TRANSITIONS))


def test_each_transition_has_one_owner_except_the_documented_session_moves() -> None:
    pairs = {(t.source, t.target) for t in SERVER_TRANSITIONS}
    shared = {pair: set(owners(*pair)) for pair in pairs if len(owners(*pair)) > 1}

    assert SHARED == shared


@pytest.mark.parametrize(
    ("source", "target", "owner"),
    [
        ("Creating", "Starting", Owner.CONTROLLER),
        ("Starting", "Ready", Owner.AGENT),
        ("Starting", "Error", Owner.AGENT),
        ("Ready", "Unhealthy", Owner.AGENT),
        ("Allocated", "Stopped", Owner.API),
        ("Stopped", "Starting", Owner.API),
        ("Unhealthy", "Starting", Owner.API),
        ("Allocated", "Creating", Owner.CONTROLLER),
    ],
    ids=str,
)
def test_the_lifecycle_transitions_belong_to_their_owner_only(
    source: str, target: str, owner: Owner
) -> None:
    others = [o for o in Owner if o is not owner]

    assert (True, [False, False]) == (
        allowed(source, target, owner),
        [allowed(source, target, o) for o in others],
    )


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("Creating", "Ready"),
        ("Creating", "Allocated"),
        ("Shutdown", "Creating"),
        ("Stopped", "Ready"),
        ("Stopped", "Allocated"),
        ("Error", "Ready"),
        ("Unhealthy", "Ready"),
        ("Ready", "Starting"),
    ],
    ids=str,
)
def test_shortcuts_around_the_lifecycle_are_forbidden(source: str, target: str) -> None:
    assert frozenset() == owners(source, target)


def test_every_power_signal_leads_somewhere_allowed_to_the_api() -> None:
    def moves(signal: PowerSignal, state: GameServerState) -> bool:
        if signal is PowerSignal.RESTART and state in RESTART_IN_PLACE:
            return True  # state unchanged: a new listener
        target = GS.STOPPED if signal is PowerSignal.STOP else GS.STARTING
        return allowed(state, target, Owner.API)

    bad = [(sig, st) for sig, states in POWER.items() for st in states if not moves(sig, st)]

    assert [] == bad
    assert set(PowerSignal) == set(POWER)


def test_sessions_go_from_active_to_ended_and_pending_and_ending_are_unused() -> None:
    used = {s.value for s in SessionState} - {s.value for s in SESSION_UNUSED}

    assert used == reachable(SESSION_INITIAL.value, SESSION_TRANSITIONS)
    assert frozenset() == targets(SessionState.ENDED.value, SESSION_TRANSITIONS)
    assert {SessionState.ENDED} == SESSION_TERMINAL
    assert set(Owner) == {t.owner for t in SESSION_TRANSITIONS}


def test_the_lua_tables_hold_exactly_the_python_rows() -> None:
    lua = lua_source()
    rows = {
        line.strip()
        for line in lua.split("local SESSION_MOVES")[0].splitlines()
        if line.strip().startswith("['")
    }
    expected = {
        f"['{a}>{b}'] = {{{', '.join(f'{o.value} = true' for o in sorted(owners(a, b)))}}},"
        for a, b in {(t.source, t.target) for t in SERVER_TRANSITIONS}
    }

    assert expected == rows


def test_every_state_changing_script_declares_an_owner() -> None:
    names = [n for n in dir(scripts) if n.isupper() and n not in {"PRELUDE", "FENCE"}]
    changing = [n for n in names if {"bump(", "end_session("} & _calls(getattr(scripts, n))]
    unowned = [n for n in changing if scripts.owner_of(n) is None]

    assert [] == unowned
    assert "local OWNER = 'agent'" in scripts.source("MARK_READY")
    assert "local OWNER = 'controller'" in scripts.source("CTL_SCHEDULE")
    assert "local OWNER = nil" in scripts.source("LEASE_ACQUIRE")


def _calls(body: str) -> set[str]:
    return {call for call in ("bump(", "end_session(") if call in body}
