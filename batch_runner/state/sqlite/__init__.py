"""The state on SQLite: one WAL database file under the log dir (the default backend)."""
