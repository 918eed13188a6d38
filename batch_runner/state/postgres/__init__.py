"""The state on PostgreSQL (``settings.backend``): one database several hosts share.

Imported only where a backend is configured: psycopg is loaded by these modules and never by
a command without one; procrastinate only by ``pqschema`` (``cluster init``).
"""
