"""Which engine this process uses: decided once, from the CLI, then the environment.

Order (first found wins):

1. ``curate --engine local|ray`` and ``curate --ray-address ADDRESS`` (global options);
2. ``CURATE_ENGINE`` and ``CURATE_RAY_ADDRESS``;
3. the engine: ``ray`` when an address was given in 1 or 2, else ``local``; the address of
   the ray engine: ``RAY_ADDRESS`` (Ray's own variable), else none = a Ray instance started
   by this process on this machine's usable cores.

The choice is recorded with every command run in workspace.json (``runs[].engine``).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, NamedTuple

from curate.engine.base import Engine
from curate.engine.local import LocalEngine
from curate.errors import UsageError

ENGINES = ("local", "ray")
ENV_ENGINE = "CURATE_ENGINE"
ENV_ADDRESS = "CURATE_RAY_ADDRESS"


class EngineChoice(NamedTuple):
    """An engine name, the Ray address (None = local or a private Ray instance) and where they came from."""

    name: str
    address: str | None
    source: str

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source}
        if self.name == "ray":
            out["address"] = self.address or "local instance"
        return out


_cli: dict[str, str | None] = {"engine": None, "address": None}
_engine: tuple[EngineChoice, Engine] | None = None


def set_cli_engine(engine: str | None, address: str | None) -> EngineChoice:
    """Record the global ``--engine`` / ``--ray-address`` options (None = not given); returns the choice."""
    _cli["engine"] = (engine or "").strip().lower() or None
    _cli["address"] = (address or "").strip() or None
    choice = engine_choice()
    _note(choice)
    return choice


def engine_choice() -> EngineChoice:
    """The engine and address this process uses (see the module docstring for the order)."""
    name, source = _cli["engine"], "--engine"
    address, address_source = _cli["address"], "--ray-address"
    if not name and os.environ.get(ENV_ENGINE, "").strip():
        name, source = os.environ[ENV_ENGINE].strip().lower(), ENV_ENGINE
    if not address and os.environ.get(ENV_ADDRESS, "").strip():
        address, address_source = os.environ[ENV_ADDRESS].strip(), ENV_ADDRESS
    if not name:
        name, source = ("ray", address_source) if address else ("local", "default")
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r} ({source}); choose one of {', '.join(ENGINES)}")
    if name == "ray" and not address and os.environ.get("RAY_ADDRESS", "").strip():
        address = os.environ["RAY_ADDRESS"].strip()
    if name == "local":
        address = None
    return EngineChoice(name, address, source)


_override: list[Engine] = []


@contextlib.contextmanager
def use_engine(engine: Engine) -> Iterator[Engine]:
    """Run the enclosed calls on ``engine`` whatever the choice (notebooks, tests, a caller that holds
    its own Ray connection); its record goes to the runs made meanwhile."""
    from curate.invocation import current_engine, set_current_engine

    before = current_engine()
    _override.append(engine)
    set_current_engine(engine.record())
    try:
        yield engine
    finally:
        _override.pop()
        set_current_engine(before)


def get_engine() -> Engine:
    """The engine of this process (made at the first call; the same one afterwards while the choice holds)."""
    global _engine
    if _override:
        return _override[-1]
    choice = engine_choice()
    if _engine is not None and _engine[0] == choice:
        return _engine[1]
    shutdown_engine()
    if choice.name == "ray":
        from curate.engine.ray_engine import RayEngine

        engine: Engine = RayEngine(choice.address)
    else:
        engine = LocalEngine()
    _engine = (choice, engine)
    _note(choice)
    return engine


def local_engine() -> Engine:
    """A local engine (for callers that must run in this process whatever the choice)."""
    return LocalEngine()


def shutdown_engine() -> None:
    """Close the engine made by :func:`get_engine` (disconnects from Ray)."""
    global _engine
    if _engine is not None:
        _engine[1].close()
        _engine = None


def _note(choice: EngineChoice) -> None:
    from curate.invocation import set_current_engine

    set_current_engine(choice.record())


def _reset_for_tests() -> None:
    shutdown_engine()
    _cli.update(engine=None, address=None)
    _note(EngineChoice("local", None, "default"))
