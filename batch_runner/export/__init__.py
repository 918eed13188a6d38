"""Hand the jobs to cron and systemd (SPEC section 12).

``cron`` turns a job into a crontab line, ``systemd`` into units. Both are pure: they take the
validated config and the Python to run, and return text; the CLI prints it.
"""
