"""The JSON Schema of the config file (``batch_runner schema``), generated from the models."""

from __future__ import annotations

from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """A JSON Schema editors can use to check a config file as it is typed."""
    from batch_runner.config.models import ConfigModel

    generated = ConfigModel.model_json_schema(by_alias=True, mode="validation")
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "batch_runner config",
        "description": "Jobs for batch_runner to run on time, and its settings; "
        "other top-level keys are allowed and ignored.",
        **generated,
    }
