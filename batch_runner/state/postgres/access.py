"""Who may use the service, on the cluster's database: its tokens, the dashboard's sessions,
and the audit trail (see ``Store`` for what each operation means). Every host's service signs
in against the same tokens.

Only hashes of tokens and session ids are kept (``state.tokens``): the database grants no
access. Times are timestamptz here and epoch seconds in what leaves.
"""

from __future__ import annotations

from batch_runner.errors import OperationFailed
from batch_runner.state.postgres.base import when
from batch_runner.state.postgres.jobstate import PgJobState, with_epochs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_AUDIT_FIELDS = ("at", "actor", "scope", "action", "run_id", "job_name", "remote", "detail")
_TOKEN_TIMES = ("created_at", "last_used_at", "revoked_at")


class PgAccess(PgJobState):
    """Tokens, sessions and the audit trail."""

    # --- tokens -------------------------------------------------------------------------------

    def add_token(self, name: str, scope: str, secret_hash: str, at: float) -> None:
        # One statement, so two hosts adding the same name never both pass a check (the
        # second waits for the first's commit): a revoked token's row gives way, its name free
        # again; an active one's stays, and nothing comes back. No error either way, so a
        # refusal leaves the caller's transaction usable.
        added = self._first(
            "INSERT INTO batch_runner.tokens (name, hash, scope, created_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, "
            "scope = EXCLUDED.scope, created_at = EXCLUDED.created_at, last_used_at = NULL, "
            "revoked_at = NULL WHERE tokens.revoked_at IS NOT NULL RETURNING 1 AS added",
            (name, secret_hash, scope, when(at)),
            doing="write to",
        )
        if added is None:
            raise OperationFailed(
                f"a token named {name!r} exists already; revoke it first "
                f"(`batch_runner token revoke {name}`) or choose another name"
            )

    def token_by_hash(self, secret_hash: str) -> dict[str, Any] | None:
        row = self._first(
            "SELECT name, scope, created_at, last_used_at FROM batch_runner.tokens "
            "WHERE hash = %s AND revoked_at IS NULL",
            (secret_hash,),
        )
        return with_epochs(row, *_TOKEN_TIMES) if row else None

    def touch_token(self, name: str, at: float) -> None:
        self._write(
            "UPDATE batch_runner.tokens SET last_used_at = %s WHERE name = %s", (when(at), name)
        )

    def list_tokens(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT name, scope, created_at, last_used_at, revoked_at FROM batch_runner.tokens "
            'ORDER BY name COLLATE "C"'
        )
        return [with_epochs(row, *_TOKEN_TIMES) for row in rows]

    def revoke_token(self, name: str, at: float) -> bool:
        with self._joined():
            revoked = self._write(
                "UPDATE batch_runner.tokens SET revoked_at = %s WHERE name = %s "
                "AND revoked_at IS NULL",
                (when(at), name),
            ).rowcount
            self._write("DELETE FROM batch_runner.sessions WHERE token_name = %s", (name,))
        return revoked == 1

    def has_active_tokens(self) -> bool:
        return (
            self._first("SELECT 1 FROM batch_runner.tokens WHERE revoked_at IS NULL LIMIT 1")
            is not None
        )

    # --- the dashboard's sessions ---------------------------------------------------------------

    def add_session(
        self, session_hash: str, token_name: str, csrf: str, at: float, expires_at: float
    ) -> None:
        with self._joined():
            # Here rather than on a timer: sessions are few, and a sign-in is rare.
            self._write("DELETE FROM batch_runner.sessions WHERE expires_at <= %s", (when(at),))
            self._write(
                "INSERT INTO batch_runner.sessions (hash, token_name, csrf, created_at, "
                "expires_at) VALUES (%s, %s, %s, %s, %s)",
                (session_hash, token_name, csrf, when(at), when(expires_at)),
            )

    def session_by_hash(self, session_hash: str, now: float) -> dict[str, Any] | None:
        # The token is checked on every request, not at sign-in only: revoking it on any host
        # ends its sessions on every host at once.
        row = self._first(
            "SELECT s.token_name, t.scope, s.csrf, s.expires_at FROM batch_runner.sessions s "
            "JOIN batch_runner.tokens t ON t.name = s.token_name AND t.revoked_at IS NULL "
            "WHERE s.hash = %s AND s.expires_at > %s",
            (session_hash, when(now)),
        )
        return with_epochs(row, "expires_at") if row else None

    def drop_session(self, session_hash: str) -> None:
        self._write("DELETE FROM batch_runner.sessions WHERE hash = %s", (session_hash,))

    # --- the audit trail ------------------------------------------------------------------------

    def record_audit(self, entry: dict[str, Any]) -> None:
        # Within the caller's transaction when one is open: the change and its line are
        # committed together, or neither is.
        values = {key: entry.get(key) for key in _AUDIT_FIELDS}
        values["at"] = when(values["at"])
        self._write(
            f"INSERT INTO batch_runner.audit ({', '.join(_AUDIT_FIELDS)}) "
            f"VALUES ({', '.join(f'%({key})s' for key in _AUDIT_FIELDS)})",
            values,
        )

    def audit_entries(
        self, *, limit: int = 50, before_seq: int | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        # Only the filters given, so that a run's lines are read through its index.
        clauses = [
            c for c, v in (("seq < %s", before_seq), ("run_id = %s", run_id)) if v is not None
        ]
        params = [v for v in (before_seq, run_id) if v is not None]
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._read(
            f"SELECT * FROM batch_runner.audit{where} ORDER BY seq DESC LIMIT %s",
            (*params, max(limit, 0)),
        )
        return [with_epochs(row, "at") for row in rows]
