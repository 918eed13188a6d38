"""config.schema_rules: its patterns against the Python checks they mirror, on many inputs.

The corpus test (test_schema_corpus.py) compares whole configs; here each pattern meets a few
thousand generated values (a fixed seed, so a failure repeats), and the one direction that
must never fail is checked: what the Python check accepts, the pattern accepts. The tables
the patterns are built from are checked against all of Unicode, and when a JavaScript engine
is installed, it must read every pattern as Python's re does (editors run ECMA-262).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import test_schema_corpus as corpus

from batch_runner.config import schema_rules as rules
from batch_runner.config.schema import json_schema
from batch_runner.config.validation import validate_document
from batch_runner.errors import ConfigError
from batch_runner.net import hosts
from batch_runner.net.urls import HTTP_METHODS
from batch_runner.schedules import DAY_NAMES, ScheduleError, parse_schedule

SAMPLES = 3000
WHITESPACE = [" ", "\t", "\n", "\u3000", "\xa0", "\x1c", "\u200b", "\ufeff"]


def _pieces(rng: random.Random, tokens: list[str], most: int) -> str:
    return "".join(rng.choice(tokens) for _ in range(rng.randint(1, most)))


def _never_refused(pattern: str, values: Iterator[str], accepts: Callable[[str], bool]) -> None:
    compiled = re.compile(pattern)
    false_alarms = [v for v in values if accepts(v) and not compiled.search(v)]
    assert not false_alarms, false_alarms[:10]


def _schedule(kind: str) -> Callable[[str], bool]:
    def accepts(value: str) -> bool:
        try:
            parse_schedule(kind, value)
        except ScheduleError:
            return False
        return True

    return accepts


def _intervals(rng: random.Random) -> Iterator[str]:
    limits = ["3650", "87600", "5256000", "315360000", "0", "0.", ".", "0.0000005", "0.00000000"]
    for _ in range(SAMPLES):
        if rng.random() < 0.4:
            yield _pieces(rng, ["0", "1", "9", "00", ".", *limits, *"smhdSMHDx -", "\u3000"], 5)
            continue
        number = rng.choice(limits) + "".join(rng.choices("0123456789", k=rng.randint(0, 16)))
        unit = rng.choice(["", "s", "m", "h", "d", "D"])
        yield rng.choice(["", " "]) + number + rng.choice(["", " "]) + unit + rng.choice(["", "\t"])


def _weekly(rng: random.Random) -> Iterator[str]:
    names = [*DAY_NAMES, *(name[:3] for name in DAY_NAMES), "mo", "sundya", "tues"]
    separators = [",", " ", ", ", " ,", ",,", "\u3000", ", ,", ";", "\t"]
    times = ["09:00", "9:00", "23:59:59", "24:00", "3", "12:60", "09:00:00"]
    for _ in range(SAMPLES):
        words = []
        for _ in range(rng.randint(0, 4)):
            words.append("".join(c.upper() if rng.random() < 0.3 else c for c in rng.choice(names)))
            words.append(rng.choice(separators))
        if rng.random() < 0.6:
            words.append(rng.choice(times))
        yield rng.choice(["", " ", ","]) + "".join(words) + rng.choice(["", " ", ",", "\n"])


def test_schedule_patterns_never_refuse_what_parse_schedule_accepts() -> None:
    rng = random.Random(1)
    _never_refused(rules.interval(), _intervals(rng), _schedule("interval"))
    clock = ["0", "1", "2", "3", "5", "9", ":", "00", "23", "59", "60", " ", "\u3000", "a"]
    daily = (_pieces(rng, clock, 7) for _ in range(SAMPLES))
    _never_refused(rules.daily(), daily, _schedule("daily"))
    _never_refused(rules.weekly(), _weekly(rng), _schedule("weekly"))


def _iso_values(rng: random.Random) -> Iterator[str]:
    years = ["2025", "2024", "2000", "1900", "0001", "9999", "0000", "2026"]
    dates = ["-07-29", "0729", "-02-29", "0229", "-04-31", "-13-01", "-W31", "W31", "-W31-2"]
    dates += ["W312", "-W53", "W537", "-W53-7", "-W00", "-W31-8", "-0729"]
    times = ["02", "0200", "02:00", "020000", "02:00:00", "23:59:59", "24:00", "02:0000"]
    times += ["02:00:00.1", "02:00:00,123456789", "02:00.5", "2:00", "20020000", "2002000"]
    times += ["02:", "02x", "02:00:00.123456xyz", "02:00:00.5x", "020000123456q", "02\u00e9"]
    offsets = ["", "0", "05", "0530", "05:30", "053015", "05:30:15.5", "23:59", "24:00"]
    offsets += ["23:59:59.999999", "23:60", "00:60", "22:99:99", "05:3", "05000000", "05.5"]
    for _ in range(SAMPLES):
        if rng.random() < 0.2:
            yield _pieces(rng, ["2025", "-", "W", "0", "1", "2", "T", ":", "Z", "+", ".", " "], 14)
            continue
        text = rng.choice(years) + rng.choice(dates)
        if rng.random() < 0.7:
            text += rng.choice(["T", " ", "x", "\U0001f600", "0", "-", "Z"]) + rng.choice(times)
            if rng.random() < 0.6:
                text += rng.choice(["Z", "+", "-"]) + rng.choice(offsets)
        yield text


def _fromisoformat_accepts(value: str) -> bool:
    try:
        datetime.fromisoformat(value).astimezone()  # models._check_last_run
    except (ValueError, OverflowError):
        return False
    return True


def test_last_run_pattern_never_refuses_what_fromisoformat_reads() -> None:
    _never_refused(rules.iso_datetime(), _iso_values(random.Random(2)), _fromisoformat_accepts)


def test_method_pattern_is_str_upper() -> None:
    letters = [*"GETPOSHADUCLIN", *"getposhaducln", *rules.UPPER_TO_ASCII.values(), " "]
    rng = random.Random(3)
    compiled = re.compile(rules.method())
    for value in [_pieces(rng, letters, 7) for _ in range(SAMPLES)] + list(HTTP_METHODS):
        assert bool(compiled.search(value)) == (value.upper() in HTTP_METHODS), value


def _hosts(rng: random.Random) -> Iterator[str]:
    tokens = ["a", "Z", "0", "127", ".", "-", "_", "*.", "*", "[", "]", "::", ":", "1.2.3.4"]
    tokens += ["::1", "%", " ", "\u3000", "\u00fc", "example", "com", "\uff0e", "\u3002", "!"]
    return (_pieces(rng, tokens, 7) for _ in range(SAMPLES))


def _parse_pattern_accepts(value: str) -> bool:
    try:
        hosts.parse_pattern(value)
    except hosts.BadHost:
        return False
    return True


def test_allow_hosts_pattern_never_refuses_what_parse_pattern_reads() -> None:
    _never_refused(rules.host_pattern(), _hosts(random.Random(4)), _parse_pattern_accepts)


def _urls(rng: random.Random) -> Iterator[str]:
    schemes = ["http://", "HTTPS://", "ftp://", "http:/", " http://", "ht\ttp://", "\x01https://"]
    users = ["", "", "u@", "u:p@", "a@b@", "@"]
    parts = ["a", "example", ".", "com", "-", "_", "1", "127", "0", "1.2.3.4", "[::1]", "[", "]"]
    parts += ["%41", " ", "\t", "\u00fc", "\uff0f", "${HOST}", "$", "::", "[v1.x]", "\u3002"]
    parts += ["[fe80::1%eth0]", "[127.0.0.1]"]
    ports = ["", "", ":", ":80", ":65535", ":0080", ":8\t0", ":${PORT}"]
    rests = ["", "/", "/x?y#z", "?q", "#f", "/a b", "\n"]
    for _ in range(SAMPLES):
        host = "".join(rng.choice(parts) for _ in range(rng.randint(0, 5)))
        yield rng.choice(schemes) + rng.choice(users) + host + rng.choice(ports) + rng.choice(rests)


def _validate_accepts(document: dict[str, Any]) -> bool:
    try:
        validate_document("urls.json", document, "/")
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("host_checked", [True, False])
def test_url_patterns_never_refuse_what_validate_accepts(
    host_checked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST", "example.com")
    monkeypatch.setenv("PORT", "80")

    def accepts(url: str) -> bool:
        if host_checked:
            job = {"name": "a", "type": "http", "url": url}
            document = {"jobs": [{**job, "schedule_type": "interval", "schedule_time": 60}]}
        else:
            document = {"jobs": [], "settings": {"notifiers": [{"type": "webhook", "url": url}]}}
        return _validate_accepts(document)

    _never_refused(rules.url(host_checked), _urls(random.Random(5)), accepts)


# --- the tables ------------------------------------------------------------------------------


def test_whitespace_is_what_str_isspace_holds() -> None:
    spaces = [chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()]
    assert max(spaces) < "\U00010000"
    compiled = re.compile(rules.WS)
    assert [chr(i) for i in range(0x10000) if compiled.fullmatch(chr(i))] == spaces


def test_case_tables_are_complete() -> None:
    upper: dict[str, str] = {}
    lower = []
    for i in range(0x80, sys.maxunicode + 1):
        char = chr(i)
        if char.upper().isascii():
            upper[char.upper()] = upper.get(char.upper(), "") + char
        if char.lower().isascii():
            lower.append(char.lower())
    assert upper == rules.UPPER_TO_ASCII
    # Day names are matched as ASCII ([Mm][Oo][Nn]): no other character lowers into one.
    assert not set(lower) & set("".join(DAY_NAMES))


def test_nfkc_delimiters_are_complete() -> None:
    def delimiter(char: str) -> bool:
        if unicodedata.is_normalized("NFKC", char):
            return False
        return any(d in unicodedata.normalize("NFKC", char) for d in "/?#@:")

    found = "".join(chr(i) for i in range(0x80, sys.maxunicode + 1) if delimiter(chr(i)))
    assert found == rules._NFKC_DELIMITERS


# --- ECMA-262 --------------------------------------------------------------------------------

_NODE_SCRIPT = """
const [patterns, texts] = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(["", "u"].map((flags) =>
  patterns.map((p) => texts.map((t) => new RegExp(p, flags).test(t))))));
"""


def _patterns(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for value in schema.values():
            yield from _patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _patterns(value)


def _texts() -> list[str]:
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                collect(key)
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect([corpus.BROKEN, corpus.VALID])
    rng = random.Random(6)
    for generated in (_intervals(rng), _weekly(rng), _iso_values(rng), _hosts(rng), _urls(rng)):
        found.update(list(generated)[:300])
    return sorted(found)


@pytest.mark.skipif(shutil.which("node") is None, reason="no JavaScript engine (node)")
def test_javascript_reads_every_pattern_as_python_does() -> None:
    patterns = list(dict.fromkeys(_patterns(json_schema())))
    texts = _texts()
    node = subprocess.run(
        ["node", "-e", _NODE_SCRIPT],
        input=json.dumps([patterns, texts]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    python = [[re.search(p, t) is not None for t in texts] for p in patterns]
    for flags, results in zip(["", "u"], json.loads(node.stdout), strict=True):
        differ = [
            (flags, pattern[:40], text)
            for pattern, js, py in zip(patterns, results, python, strict=True)
            for text, a, b in zip(texts, js, py, strict=True)
            if a != b
        ]
        assert not differ, differ[:10]
