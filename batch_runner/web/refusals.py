"""Whose a refused change of the state is: its own (a constraint on its values: a run id
drawn twice), the state's (locked, full, damaged: every change queued meanwhile meets it too),
or a bug of the change (a SystemExit), which must stop neither a thread nor the event loop."""

from __future__ import annotations

from batch_runner.errors import StorageError


def own_refusal(exc: StorageError) -> bool:
    """Whether the database refused this change's own values (a constraint: a run id taken),
    its transaction still open for the others, rather than being unwritable."""
    import sqlite3

    cause = exc.__cause__
    return isinstance(cause, sqlite3.IntegrityError) or _cluster_error(cause, "IntegrityError")


def state_refusal(exc: StorageError) -> bool:
    """Whether the state database itself refused (locked past the wait, full, damaged, a
    repair under way): what every change queued meanwhile would meet too. Not a constraint on
    one change's values, nor a file one change writes besides (a result line)."""
    import sqlite3

    from batch_runner.errors import BackendUnavailable, DamagedState, StateLocked

    if isinstance(exc, StateLocked | DamagedState | BackendUnavailable):
        return True
    cause = exc.__cause__
    if _cluster_error(cause, "OperationalError"):
        return True
    return isinstance(cause, sqlite3.Error) and not isinstance(cause, sqlite3.IntegrityError)


def _cluster_error(cause: BaseException | None, kind: str) -> bool:
    """Whether ``cause`` is psycopg's ``kind`` (a cluster's database): psycopg is loaded only
    where a backend is configured, and is not imported here for the others."""
    import sys

    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(cause, getattr(psycopg, kind))


def contained(exc: BaseException) -> Exception:
    """``exc`` as its caller may meet it: a change's SystemExit (a library's sys.exit) is that
    change's bug, which must stop neither the caller's thread nor the event loop awaiting it."""
    if isinstance(exc, Exception):
        return exc
    contained = RuntimeError(f"a change of the state ended with {exc!r}")
    contained.__cause__ = exc
    return contained
