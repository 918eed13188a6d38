"""The config file: pydantic models, loading with good errors, a cached snapshot, atomic edits.

Nothing is imported here on purpose: ``config.loader`` must stay cheap (no pydantic) so the hot
CLI paths can load a config from its snapshot; each module is imported where it is needed.
"""
