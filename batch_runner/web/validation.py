"""A request the API cannot even parse (a wrong type, an unknown field, no JSON) answers 422
with one sentence, as every other refusal, instead of FastAPI's list of error objects.

A route class rather than an application-wide handler: seed 001's API keeps FastAPI's own
shape, which its clients know.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from batch_runner.errors import UsageError
from batch_runner.web.errors import error_response

# What pydantic adds to an error's location inside a union or a validator: not a field name.
_TYPE_TAG = re.compile(r"^(str|int|float|bool|list|dict|none|literal|function-\w+|[\w-]+\[.*\])$")


class SentenceRoute(APIRoute):
    """An ``APIRoute`` whose validation errors are ``{"detail": "one sentence"}`` (422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return error_response(422, sentence_of(exc.errors()))

        return route


def sentence_of(errors: Sequence[Any]) -> str:
    """The first error in words: where (a field, a query parameter) and what is wrong, and
    how many other fields are wrong too."""
    if not errors:
        return "the request is not valid"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    source, where = _where(first)
    message = first.get("msg", "is not valid")
    if not where:
        return f"the {source}: {message}"
    more = len({_where(error) for error in errors} - {(source, where)})
    tail = f" (and {more} more field{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {message}{tail}"


def _where(error: Any) -> tuple[str, str]:
    """(body, query, path or header; the field's dotted name), a union's branch left out."""
    loc = list(error.get("loc") or ())
    source = loc.pop(0) if loc and loc[0] in ("body", "query", "path", "header") else "body"
    while loc and isinstance(loc[-1], str) and _TYPE_TAG.match(loc[-1]):
        loc.pop()
    return str(source), ".".join(str(part) for part in loc)


def refuse_surrogates(value: Any, where: str = "") -> None:
    """UsageError if a string in ``value`` (a parsed JSON body) is not text: JSON may escape
    half of a UTF-16 pair ("\\ud800"), which could be neither stored, nor logged, nor
    answered. The sentence names the field it is in (not the key itself, which may be the bad
    one)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(
                f"{where or 'the body'} holds a lone surrogate (an escape such as \\ud800 "
                "that is half of a character); send text"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_surrogates(key, where)  # first: the key is then safe to name
            refuse_surrogates(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            refuse_surrogates(item, f"{where}.{index}")
