"""Opening the cluster's store from ``settings.backend``: the DSN from the environment, this
host's id, and the check that ``cluster init`` has made the database ready for this version."""

from __future__ import annotations

import os

import psycopg
from psycopg.rows import tuple_row

from batch_runner.errors import BackendUnavailable
from batch_runner.state.postgres import connection, schema
from batch_runner.state.postgres.cluster import host_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.state.postgres.store import PostgresStore

# Databases this process found ready already: the check costs a round trip per store.
_checked: set[str] = set()


def open_cluster_store(backend: Any, *, role: str = "cli") -> PostgresStore:
    """A store on the cluster's database; BackendUnavailable (exit 75) when it cannot be
    reached in time or has not been made ready by ``batch_runner cluster init``."""
    from batch_runner.state.postgres.store import PostgresStore

    endpoint = endpoint_of(backend)
    store = PostgresStore(endpoint, host=host_id(), role=role)
    if endpoint.dsn not in _checked:
        try:
            # The tuple rows installed_version reads, on the store's own connection.
            cursor = store.conn.cursor(row_factory=tuple_row)
            version = schema.installed_version(cursor, endpoint.where)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            store.close()
            raise connection.failure(exc, endpoint, "read") from None
        except BaseException:
            store.close()
            raise
        if version != schema.SCHEMA_VERSION:
            store.close()
            found = "has no batch_runner schema" if version is None else f"has version {version}"
            raise BackendUnavailable(
                f"the cluster database at {endpoint.where} {found}, this batch_runner needs "
                f"version {schema.SCHEMA_VERSION}: run `batch_runner cluster init`"
            )
        _checked.add(endpoint.dsn)
    return store


def endpoint_of(backend: Any) -> connection.Endpoint:
    """Where ``settings.backend`` points: its DSN read from the environment now."""
    return connection.Endpoint(connection.dsn_from(backend.dsn_env, os.environ), backend.dsn_env)
