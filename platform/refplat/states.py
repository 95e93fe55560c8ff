"""The state machines of game servers and sessions, as data: every allowed transition and its owner.

This module is the single source of truth. :func:`lua_source` turns the tables into the Lua
``allowed``/``session_allowed`` checks that :mod:`refplat.scripts` puts in its prelude: every
script declares its owner, and every state write (``bump`` or ``move`` with a ``state`` field)
is refused unless ``(from, to, owner)`` is a row here. The tests walk the same rows.

Game servers (Agones' GameServer, trimmed, plus ``Stopped`` for power actions)::

    Creating -> Starting -> Ready <-> Allocated        (controller, agent, api)
    Starting -> Error, Ready/Allocated -> Unhealthy    (agent)
    Starting/Ready/Allocated/Unhealthy/Error -> Stopped -> Starting (api: stop, start)
    Unhealthy/Error -> Starting                        (api: restart)
    any but Creating/Stopped/Shutdown -> Creating      (controller: node lost)
    any -> Shutdown                                    (api: delete; terminal)

Power actions (``POST /v1/servers/{id}/power``, Pterodactyl's signals):

- ``stop`` from Starting, Ready, Allocated, Unhealthy or Error: the server becomes Stopped and
  leaves the Ready pool; an Allocated server's session ends ``Evicted`` in the same script.
  The server keeps its node; the agent closes the listener.
- ``start`` from Stopped: back to Starting on its node (the agent opens a listener and marks
  it Ready), or to Creating when its node was lost meanwhile (the controller schedules it).
- ``restart`` from Ready or Allocated keeps the state and sets the server's ``restart`` flag:
  the agent opens a new listener (a new port), closes the old one and moves the port; an
  Allocated server keeps its session and the session's port follows. From Unhealthy, Error or
  Stopped, restart is Starting (as start). This is how an Unhealthy or Error server comes back.
- Anything else (e.g. stop of a Stopped server, start of a Ready one) is refused: 409.

Unhealthy: the agent marks a Ready or Allocated server Unhealthy when its listener stops
serving (an Allocated server's session ends ``ServerLost``), and a Starting server Error
when its listener cannot be started. Only a restart (or a stop/delete, or losing the node)
moves it on; the controller does not repair servers by itself, with one exception: on the kube
runtime a server whose Pod is gone (deleted, evicted, failed) turns Unhealthy with ``lost`` set
and keeps its session, and the controller handles it as a server of a lost node (Unhealthy ->
Creating, the session re-placed or ended by ``--lost-session-policy``), so a new Pod replaces
it, as a ReplicaSet replaces a Pod.

One owner per transition, with two documented exceptions: Allocated -> Ready happens when the
session ends, which the api does (``DELETE``) and the controller does (expiry); Ready ->
Allocated is the api's allocation and the controller's re-placing of a session whose server's
node was lost (``--lost-session-policy replace``). Sessions are
created Active and end in one script, so Pending and Ending are not used today.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from refplat.model import GameServerState, SessionState

GS = GameServerState


class Owner(enum.StrEnum):
    """The process kind that may make a transition (each Lua script declares one)."""

    API = "api"
    CONTROLLER = "controller"
    AGENT = "agent"


class PowerSignal(enum.StrEnum):
    """A power action of ``POST /v1/servers/{id}/power``."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"


@dataclass(frozen=True)
class Transition:
    """One allowed move of a state machine, by one owner, and why it happens."""

    source: str
    target: str
    owner: Owner
    why: str


def _rows(
    sources: Iterable[GameServerState], target: GameServerState, owner: Owner, why: str
) -> tuple[Transition, ...]:
    return tuple(Transition(s.value, target.value, owner, why) for s in sources)


SERVER_INITIAL = GS.CREATING
SERVER_TERMINAL = frozenset({GS.SHUTDOWN})
NODE_BOUND = (GS.STARTING, GS.READY, GS.ALLOCATED, GS.UNHEALTHY, GS.ERROR)

SERVER_TRANSITIONS: tuple[Transition, ...] = (
    *_rows([GS.CREATING], GS.STARTING, Owner.CONTROLLER, "scheduled onto a live node"),
    *_rows([GS.STARTING], GS.READY, Owner.AGENT, "its listener is up"),
    *_rows([GS.STARTING], GS.ERROR, Owner.AGENT, "its listener could not be started"),
    *_rows([GS.READY], GS.ALLOCATED, Owner.API, "a session allocated it"),
    *_rows([GS.READY], GS.ALLOCATED, Owner.CONTROLLER, "a lost server's session moved here"),
    *_rows([GS.ALLOCATED], GS.READY, Owner.API, "its session ended (DELETE)"),
    *_rows([GS.ALLOCATED], GS.READY, Owner.CONTROLLER, "its session expired"),
    *_rows([GS.READY, GS.ALLOCATED], GS.UNHEALTHY, Owner.AGENT, "its listener stopped serving"),
    *_rows(NODE_BOUND, GS.STOPPED, Owner.API, "power stop"),
    *_rows([GS.STOPPED, GS.UNHEALTHY, GS.ERROR], GS.STARTING, Owner.API, "power start/restart"),
    *_rows([GS.STOPPED], GS.CREATING, Owner.API, "power start after its node was lost"),
    *_rows(NODE_BOUND, GS.CREATING, Owner.CONTROLLER, "its node was lost"),
    *_rows([s for s in GS if s is not GS.SHUTDOWN], GS.SHUTDOWN, Owner.API, "deleted"),
)

SESSION_INITIAL = SessionState.ACTIVE
SESSION_TERMINAL = frozenset({SessionState.ENDED})
SESSION_UNUSED = frozenset({SessionState.PENDING, SessionState.ENDING})
SESSION_TRANSITIONS: tuple[Transition, ...] = tuple(
    Transition(SessionState.ACTIVE.value, SessionState.ENDED.value, owner, why)
    for owner, why in [
        (Owner.API, "Completed (DELETE), Evicted (its server stopped or deleted)"),
        (Owner.CONTROLLER, "Expired, ServerLost (its node was lost)"),
        (Owner.AGENT, "ServerLost (its server turned Unhealthy)"),
    ]
)

# Power signal -> the states it is accepted in (see the module docstring for the targets).
POWER: dict[PowerSignal, frozenset[GameServerState]] = {
    PowerSignal.START: frozenset({GS.STOPPED}),
    PowerSignal.STOP: frozenset(NODE_BOUND),
    PowerSignal.RESTART: frozenset({GS.READY, GS.ALLOCATED, GS.UNHEALTHY, GS.ERROR, GS.STOPPED}),
}
RESTART_IN_PLACE = frozenset({GS.READY, GS.ALLOCATED})


def owners(
    source: str, target: str, table: tuple[Transition, ...] = SERVER_TRANSITIONS
) -> frozenset[Owner]:
    """Who may move from ``source`` to ``target`` (empty: forbidden)."""
    return frozenset(t.owner for t in table if (t.source, t.target) == (source, target))


def allowed(
    source: str,
    target: str,
    owner: Owner | None = None,
    table: tuple[Transition, ...] = SERVER_TRANSITIONS,
) -> bool:
    """Whether ``source -> target`` is a transition (by ``owner``, when given)."""
    who = owners(source, target, table)
    return bool(who) if owner is None else owner in who


def targets(source: str, table: tuple[Transition, ...] = SERVER_TRANSITIONS) -> frozenset[str]:
    """Every state reachable from ``source`` in one transition."""
    return frozenset(t.target for t in table if t.source == source)


def reachable(initial: str, table: tuple[Transition, ...] = SERVER_TRANSITIONS) -> frozenset[str]:
    """Every state reachable from ``initial`` (``initial`` included)."""
    seen, todo = {initial}, [initial]
    while todo:
        for target in targets(todo.pop(), table):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return frozenset(seen)


def _lua_moves(table: tuple[Transition, ...]) -> str:
    pairs = sorted({(t.source, t.target) for t in table})
    lines = []
    for source, target in pairs:
        who = ", ".join(f"{o.value} = true" for o in sorted(owners(source, target, table)))
        lines.append(f"  ['{source}>{target}'] = {{{who}}},")
    return "{\n" + "\n".join(lines) + "\n}"


def _lua_set(states: frozenset[GameServerState]) -> str:
    return "{" + ", ".join(f"{s.value} = true" for s in sorted(states)) + "}"


def _lua_power() -> str:
    rows = [f"  {signal.value} = {_lua_set(states)}," for signal, states in sorted(POWER.items())]
    return "{\n" + "\n".join(rows) + "\n}"


def lua_source() -> str:
    """Lua: the tables and ``allowed(from, to)``, ``session_allowed(from, to)`` for ``OWNER``.

    ``OWNER`` is a local the script defines before this text (nil: the script may not change
    any state). ``POWER[signal][state]`` is true when the signal is accepted in that state;
    ``RESTART_IN_PLACE[state]`` when a restart keeps the state (a new listener only).
    """
    return f"""
local SERVER_MOVES = {_lua_moves(SERVER_TRANSITIONS)}
local SESSION_MOVES = {_lua_moves(SESSION_TRANSITIONS)}
local POWER = {_lua_power()}
local RESTART_IN_PLACE = {_lua_set(RESTART_IN_PLACE)}
local function allowed(from, to)
  local who = SERVER_MOVES[from .. '>' .. to]
  return who ~= nil and OWNER ~= nil and who[OWNER] == true
end
local function session_allowed(from, to)
  local who = SESSION_MOVES[from .. '>' .. to]
  return who ~= nil and OWNER ~= nil and who[OWNER] == true
end
"""
