"""``settings.backend`` (SPEC 14): the PostgreSQL database several hosts share the state in.

Only the name of the environment variable holding the connection string is in the file: the
string carries a password, and the config file is read by every account that runs a command.
Imported with the models (pydantic).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema

from batch_runner.config.fields import Strict, fail
from batch_runner.config.words import show

# What a shell can export.
ENV_NAME_PATTERN = "[A-Za-z_][A-Za-z0-9_]*"
_ENV_NAME = re.compile(ENV_NAME_PATTERN)


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        fail(
            f"found {show(value)}; expected the name of an environment variable (letters, "
            'digits and "_", not starting with a digit)'
        )
    return value


EnvName = Annotated[
    str,
    AfterValidator(_check_env_name),
    WithJsonSchema({"type": "string", "pattern": f"^{ENV_NAME_PATTERN}$"}),
]


class PostgresBackend(Strict):
    """The cluster's shared state: a PostgreSQL database that several hosts use at once."""

    type: Literal["postgres"]
    dsn_env: EnvName = Field(
        description="the environment variable that holds the connection string (DSN)"
    )
    # Declared only to be refused in words of its own, at its own key; never in the schema.
    dsn: SkipJsonSchema[Any] = Field(None, exclude=True)

    @field_validator("dsn")
    @classmethod
    def _not_in_the_file(cls, value: Any) -> Any:
        fail(
            "a connection string does not belong in the config file, which every account "
            "that runs a command can read; put it in an environment variable and use dsn_env "
            'to name that variable, e.g. "dsn_env": "BATCH_RUNNER_DSN"'
        )


# The keys "did you mean" offers: dsn is never one to suggest.
KEYS = ("type", "dsn_env")
