"""The cluster (``settings.backend``): this host's share of the work of several hosts on one
PostgreSQL database. procrastinate hands runs to the workers of every host; each attempt runs
through our own executor (``runs.execute``), on the host whose worker took it. Imported only
where a backend is configured: procrastinate stays off every other path."""
