"""Who may use the service, on SQLite: its tokens, the dashboard's sessions, and the audit
trail of what was changed through it (see ``Store`` for what each operation means).

Only hashes of tokens and session ids are kept (``state.tokens``): the file grants no access.
"""

from __future__ import annotations

from batch_runner.errors import OperationFailed
from batch_runner.state.sqlite.jobstate import JobStateAndFlags

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
_AUDIT_FIELDS = ("at", "actor", "scope", "action", "run_id", "job_name", "remote", "detail")


class Access(JobStateAndFlags):
    """Tokens, sessions and the audit trail."""

    # --- tokens -------------------------------------------------------------------------------

    def add_token(self, name: str, scope: str, secret_hash: str, at: float) -> None:
        with self._joined():
            if self._first("SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)):
                raise OperationFailed(
                    f"a token named {name!r} exists already; revoke it first "
                    f"(`batch_runner token revoke {name}`) or choose another name"
                )
            # A revoked token's row gives way: its name is free again. Not INSERT OR REPLACE,
            # which would also delete whatever other row had the same hash.
            self._write("DELETE FROM tokens WHERE name = ?", (name,))
            self._write(
                "INSERT INTO tokens (name, hash, scope, created_at) VALUES (?, ?, ?, ?)",
                (name, secret_hash, scope, at),
            )

    def token_by_hash(self, secret_hash: str) -> dict[str, Any] | None:
        row = self._first(
            "SELECT name, scope, created_at, last_used_at FROM tokens "
            "WHERE hash = ? AND revoked_at IS NULL",
            (secret_hash,),
        )
        return dict(row) if row else None

    def touch_token(self, name: str, at: float) -> None:
        self._write("UPDATE tokens SET last_used_at = ? WHERE name = ?", (at, name))

    def list_tokens(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT name, scope, created_at, last_used_at, revoked_at FROM tokens ORDER BY name"
        )
        return [dict(row) for row in rows]

    def revoke_token(self, name: str, at: float) -> bool:
        with self._joined():
            revoked = self._write(
                "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (at, name),
            ).rowcount
            self._write("DELETE FROM sessions WHERE token_name = ?", (name,))
        return revoked == 1

    def has_active_tokens(self) -> bool:
        return self._first("SELECT 1 FROM tokens WHERE revoked_at IS NULL LIMIT 1") is not None

    # --- the dashboard's sessions ---------------------------------------------------------------

    def add_session(
        self, session_hash: str, token_name: str, csrf: str, at: float, expires_at: float
    ) -> None:
        with self._joined():
            # Here rather than on a timer: sessions are few, and a sign-in is rare.
            self._write("DELETE FROM sessions WHERE expires_at <= ?", (at,))
            self._write(
                "INSERT INTO sessions (hash, token_name, csrf, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (session_hash, token_name, csrf, at, expires_at),
            )

    def session_by_hash(self, session_hash: str, now: float) -> dict[str, Any] | None:
        # The token is checked on every request, not at sign-in only: revoking it (or a
        # repair that lost it) ends its sessions at once.
        row = self._first(
            "SELECT s.token_name, t.scope, s.csrf, s.expires_at FROM sessions AS s "
            "JOIN tokens AS t ON t.name = s.token_name AND t.revoked_at IS NULL "
            "WHERE s.hash = ? AND s.expires_at > ?",
            (session_hash, now),
        )
        return dict(row) if row else None

    def drop_session(self, session_hash: str) -> None:
        self._write("DELETE FROM sessions WHERE hash = ?", (session_hash,))

    # --- the audit trail ------------------------------------------------------------------------

    def record_audit(self, entry: dict[str, Any]) -> None:
        # Within the caller's transaction when one is open: the change and its line are
        # committed together, or neither is.
        self._write(
            f"INSERT INTO audit ({', '.join(_AUDIT_FIELDS)}) "
            f"VALUES ({', '.join(':' + key for key in _AUDIT_FIELDS)})",
            {key: entry.get(key) for key in _AUDIT_FIELDS},
        )

    def audit_entries(
        self, *, limit: int = 50, before_seq: int | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        # Only the filters given, so that a run's lines are read through its index.
        clauses = [c for c, v in (("seq < ?", before_seq), ("run_id = ?", run_id)) if v is not None]
        params = [v for v in (before_seq, run_id) if v is not None]
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._read(
            f"SELECT * FROM audit{where} ORDER BY seq DESC LIMIT ?", (*params, max(limit, 0))
        )
        return [dict(row) for row in rows]
