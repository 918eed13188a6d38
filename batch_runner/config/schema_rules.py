"""The checks of ``validate`` that a JSON Schema can state, as patterns (``config.schema``).

Each pattern mirrors one Python check, so that an editor flags what ``validate`` refuses and
never what it accepts; where a pattern cannot follow the check exactly it errs on the side of
accepting (tests/test_schema_corpus.py lists those places). Patterns are ECMA-262, as JSON
Schema wants, and read the same in Python's ``re`` (what the ``jsonschema`` package uses):
no inline flags, so case is spelled out (``[Mm][Oo][Nn]``); no ``\\s`` and no ``$``, which
differ between the two, so the whitespace ``str.strip()`` removes is listed and the end of
the text is ``(?![\\s\\S])``.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal

from batch_runner.net.urls import HTTP_METHODS
from batch_runner.schedules import DAY_NAMES, MAX_INTERVAL_SECONDS

# What str.isspace() holds, and so str.strip(), str.split() and re's \s in schedules.parse.
WS_CHARS = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
WS = f"[{WS_CHARS}]"
END = "(?![\\s\\S])"
_ANY_CHAR = "(?:[\\ud800-\\udbff][\\udc00-\\udfff]|[\\s\\S])"  # one code point, JS or Python
_DIGIT = "[0-9]"  # parse.py's \d also takes other scripts' digits; see the corpus test
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # as schedules.parse reads them
# An interval that timedelta rounds to 0 microseconds never advances: parse.py refuses it.
_HALF_MICROSECOND = Decimal("0.0000005")
# Characters that are not ASCII but whose str.upper() is: validate upper-cases the method.
UPPER_TO_ASCII = {
    "I": "\u0131",
    "S": "\u017f",
    "SS": "\u00df",
    "FF": "\ufb00",
    "FI": "\ufb01",
    "FL": "\ufb02",
    "FFI": "\ufb03",
    "FFL": "\ufb04",
    "ST": "\ufb05\ufb06",
}


def whole(body: str) -> str:
    """A pattern that ``body`` must match from the first character to the last."""
    return f"^(?:{body}){END}"


def _chars(text: str) -> str:
    """``text`` as the inside of a character class, non-ASCII written as escapes."""
    return "".join(c if c.isascii() else f"\\u{ord(c):04x}" for c in text)


def caseless(word: str) -> str:
    """``word`` in any case of its ASCII letters: ``mon`` gives ``[Mm][Oo][Nn]``."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _upper_spellings(word: str) -> str:
    """Every text whose ``str.upper()`` is ``word`` (upper-case ASCII), "po\ufb06" for POST."""
    if not word:
        return ""
    options = []
    for size in range(1, len(word) + 1):
        head = word[:size]
        chars = (head + head.lower() if size == 1 else "") + UPPER_TO_ASCII.get(head, "")
        if chars:
            options.append(f"[{_chars(chars)}]{_upper_spellings(word[size:])}")
    return options[0] if len(options) == 1 else f"(?:{'|'.join(options)})"


def method() -> str:
    """The HTTP methods, as models._check_method takes them (any case)."""
    return whole("|".join(_upper_spellings(name) for name in HTTP_METHODS))


# --- numbers written as text --------------------------------------------------------------


def _below(limit: int) -> str:
    """Whole numbers from 0 to ``limit - 1``, in at most as many digits as ``limit``."""
    digits = str(limit)
    options = [f"{_DIGIT}{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        if digit != "0":
            rest = len(digits) - i - 1
            lower = "0" if digit == "1" else f"[0-{int(digit) - 1}]"
            tail = "" if not rest else _DIGIT if rest == 1 else f"{_DIGIT}{{{rest}}}"
            options.append(f"{digits[:i]}{lower}{tail}")
    return "|".join(options)


def _at_most(limit: int) -> str:
    """A decimal number (``\\d+(\\.\\d*)?`` or ``\\.\\d+``) whose float is at most ``limit``.

    At the limit itself a fraction is allowed if it is below what float() rounds away: the
    first ``zeros`` digits zero (``3650.0000000000001`` is read as ``3650.0``).
    """
    zeros = 0
    while 10.0 ** -(zeros + 1) > math.ulp(limit) / 2:
        zeros += 1
    return (
        f"0*(?:{_below(limit)})(?:\\.{_DIGIT}*)?"
        f"|0*{limit}(?:\\.(?:0{{{zeros}}}{_DIGIT}*|0*))?"
        f"|\\.{_DIGIT}+"
    )


def _at_least(threshold: Decimal, digits: int = 4) -> str:
    """A lookahead: the decimal number that follows is at least ``threshold`` cut to ``digits``
    significant digits. Anything below is surely below the threshold; the sliver between is
    a gap."""
    places = -threshold.adjusted() + digits - 1
    cut = threshold.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    fraction = f"{cut:.{places}f}".split(".")[1].rstrip("0")  # 0.0000005 -> "0000005"
    zeros = len(fraction) - len(fraction.lstrip("0"))
    options = [f"0{{0,{zeros - 1}}}[1-9]"] if zeros else []
    for i in range(zeros, len(fraction)):
        if fraction[i] != "9":
            above = int(fraction[i]) + 1
            options.append(fraction[:i] + ("9" if above == 9 else f"[{above}-9]"))
    options.append(fraction)
    return f"(?=0*(?:[1-9]|\\.(?:{'|'.join(options)})))"


# --- schedule_time --------------------------------------------------------------------------

_TIME = "(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?"


def interval() -> str:
    """An interval written as text: a number and a unit, within parse.py's bounds."""
    options = []
    for unit, seconds in _UNIT_SECONDS.items():
        assert MAX_INTERVAL_SECONDS % seconds == 0, "a bound in whole units"
        # A bare number is seconds; the unit takes the spaces before it, so that they are
        # read one way only (two ways to split a run of spaces cost time squared).
        unit_pattern = f"(?:{WS}*[Ss])?" if unit == "s" else f"{WS}*{caseless(unit)}"
        number = _at_most(MAX_INTERVAL_SECONDS // seconds)
        least = _at_least(_HALF_MICROSECOND / seconds)
        options.append(f"{least}(?:{number}){unit_pattern}")
    return whole(f"{WS}*(?:{'|'.join(options)}){WS}*")


def interval_minimum() -> float:
    """The largest number of seconds that is still too short: timedelta rounds it to 0."""
    return float(_HALF_MICROSECOND)


def daily() -> str:
    return whole(f"{WS}*{_TIME}{WS}*")


def weekly() -> str:
    """Day names, full or three letters, then maybe a time; one comma at most between two."""
    day = "|".join(f"{caseless(name[:3])}(?:{caseless(name[3:])})?" for name in DAY_NAMES)
    gap = f"(?:{WS}*,{WS}*|{WS}+)"
    return whole(f"{WS}*(?:{day})(?:{gap}(?:{day}))*(?:{gap}{_TIME})?{WS}*")


def cron() -> str:
    """Five fields between spaces, or one "@" word (a macro such as "@daily"); what a field
    or a macro holds only the parser can tell."""
    field = f"[^{WS_CHARS}]+"
    return whole(f"{WS}*(?:@{field}|{field}(?:{WS}+{field}){{4}}){WS}*")


def startup() -> str:
    """No schedule_time: a blank text, as str.strip() sees it (or null)."""
    return whole(f"{WS}*")


# --- last_run: what datetime.fromisoformat (3.11) reads ------------------------------------


_YEAR = "(?!0000)[0-9]{4}"
_WEEK = "W(?:0[1-9]|[1-4][0-9]|5[0-3])"


def iso_datetime() -> str:
    """A date, then maybe any one character and a time, with maybe an offset.

    After "2025-W31-2" a digit is read as the start of the time, not as the separator.
    """
    time = _iso_time()
    return whole(
        f"(?:{_iso_date()})(?:{_ANY_CHAR}(?:{time}))?"
        f"|{_YEAR}-{_WEEK}-[1-7](?:(?![0-9]){_ANY_CHAR}(?:{time}))?"
    )


def _iso_date() -> str:
    leap = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
    forms = [f"{_YEAR}-{_WEEK}", f"{_YEAR}{_WEEK}[1-7]?"]
    for dash in ("-", ""):
        days = (
            f"(?:0[13578]|1[02]){dash}(?:0[1-9]|[12][0-9]|3[01])"
            f"|(?:0[469]|11){dash}(?:0[1-9]|[12][0-9]|30)"
            f"|02{dash}(?:0[1-9]|1[0-9]|2[0-8])"
        )
        forms += [f"{_YEAR}{dash}(?:{days})", f"{leap}{dash}02{dash}29"]
    return "|".join(forms)


def _clock(hour: str, minute: str, second: str) -> str:
    """HH, HH:MM, HHMM, HH:MM:SS or HHMMSS, then maybe a fraction after "." or "," (after any
    of them); C's fromisoformat also reads two digits or more right after HHMMSS as one."""
    fraction = "(?:[.,][0-9]+)?"
    with_colons = f"(?::{minute}(?::{second})?)?{fraction}"
    without = f"(?:{minute}(?:{second})?)?{fraction}"
    return f"{hour}(?:{with_colons}|{without}|{minute}{second}[0-9]{{2,}})"


def _iso_time() -> str:
    hour, minute, second = "(?:[01][0-9]|2[0-3])", "[0-5][0-9]", "[0-5][0-9]"
    # An offset is any HH, MM, SS (minutes may exceed 59) shorter than a day.
    any2 = "[0-9]{2}"
    offset = "|".join(
        [
            _clock("(?:[01][0-9]|2[0-2])", any2, any2),
            _clock("23", "(?:[0-4][0-9]|5[0-8])", any2),
            _clock("23", "59", "[0-5][0-9]"),
        ]
    )
    # Before an offset, C's fromisoformat lets one more ASCII character follow the clock, and
    # anything follow a fraction of six digits or more (the offset starts at the first Z+-).
    one = "[\\x00-\\x2a\\x2c\\x2e-\\x59\\x5b-\\x7f]?"
    digits = "(?:[0-9]{1,5}|[0-9]{6,}(?:[^0-9Z+-][^Z+-]*)?)"  # one way to split: linear
    clock = f"{hour}(?:(?::{minute}(?::{second})?)?|(?:{minute}(?:{second})?)?)"
    loose = f"{clock}(?:{one}|[.,]{digits})|{hour}{minute}{second}{digits}"
    return f"{_clock(hour, minute, second)}|(?:{loose})(?:Z|[+-](?:{offset}))"


# --- URLs and hosts ---------------------------------------------------------------------------

# urllib deletes these anywhere in a URL before reading it.
_GONE = "[\\t\\n\\r]*"
# urllib refuses a host with a character that NFKC normalization turns into one of "/?#@:".
_NFKC_DELIMITERS = (
    "\u2047\u2048\u2049\u2100\u2101\u2105\u2106\u2a74\ufe13\ufe16"
    "\ufe55\ufe56\ufe5f\ufe6b\uff03\uff0f\uff1a\uff1f\uff20"
)
_NETLOC = f"[^/?#\\[\\]{_chars(_NFKC_DELIMITERS)}]"  # up to the path, not an IPv6 bracket
_HOST = f"[^/?#@\\[\\]:{_chars(_NFKC_DELIMITERS)}]"
_REST = f"(?:[/?#][\\s\\S]*)?{END}"  # the path, query and fragment: never checked
# IDNA keeps ASCII as it is, so only label characters; it refuses every non-ASCII space, and
# the characters above become punctuation.
_IDNA_OTHER = f"[^\\x00-\\x7f{WS_CHARS}{_chars(_NFKC_DELIMITERS)}]"
_IDNA_CHAR = f"(?:[A-Za-z0-9_.-]|{_IDNA_OTHER})"
_PORT = f"(?::{_GONE}(?:0*(?:{_below(65536)})|(?=[^/?#]*[\\t\\n\\r])[0-9\\t\\n\\r]*)?)?"


def ipv6() -> str:
    """An IPv6 address as ipaddress reads one (RFC 3986's IPv6address), without a zone."""
    h16 = "[0-9A-Fa-f]{1,4}"
    octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    ls32 = f"(?:{h16}:{h16}|{octet}(?:\\.{octet}){{3}})"
    forms = [f"(?:{h16}:){{6}}{ls32}", f"::(?:{h16}:){{5}}{ls32}"]
    # Up to `before` + 1 groups before "::", and fewer after it the more there are before.
    for before, after in enumerate([*(f"(?:{h16}:){{{n}}}{ls32}" for n in (4, 3, 2, 1, 0)), h16]):
        forms.append(f"(?:(?:{h16}:){{0,{before}}}{h16})?::{after}")
    forms.append(f"(?:(?:{h16}:){{0,6}}{h16})?::")
    return "|".join(forms)


def url(host_checked: bool) -> str:
    """An http(s) URL with a host, as fields._check_url and urllib read it.

    With ``host_checked`` (an HTTP job's url), the host must also be a DNS name or an IP
    address, as net.hosts.parse_host wants it.
    """
    scheme = _GONE.join(["[Hh]", "[Tt]", "[Tt]", "[Pp]"]) + f"(?:{_GONE}[Ss])?"
    start = f"^[\\x00-\\x20]*{scheme}{_GONE}:{_GONE}/{_GONE}/"
    users = f"(?:{_NETLOC}*@)?"
    zone = "" if host_checked else "(?:%[^/?#\\]]+)?"  # parse_host refuses a zone
    # urllib deletes tabs and line breaks before it reads the address: then only its letters.
    spaced = "(?=[^/?#\\]]*[\\t\\n\\r])[0-9A-Fa-f:.\\t\\n\\r]*:[0-9A-Fa-f:.\\t\\n\\r]*"
    address = f"(?:{ipv6()}){zone}|{spaced}"
    # The first "[" opens the address, whatever comes before it.
    bracketed = f"[^/?#\\[]*\\[(?:v[0-9A-Fa-f]+\\.[^/?#\\]]+|{address})\\][^/?#:]*"
    host = f"{_GONE}[^/?#@\\[\\]:\\t\\n\\r{_chars(_NFKC_DELIMITERS)}]{_HOST}*"
    if host_checked:
        not_ascii = _not_ascii(_GONE)
        host = f"{dns_name(_GONE, f'{_GONE}(?:[:/?#]|{END})')}|{not_ascii}"
    # ${VAR} may write the host or the port: they are judged once it is expanded.
    variable = "(?=[^/?#]*\\$\\{)[^/?#]*"
    # "]" before "[" balances the count urllib checks: the address then runs to the path.
    unclosed = f"[^/?#\\[\\]]*\\][^/?#\\[]*\\[(?:{address})"
    netloc = f"{variable}|{unclosed}|(?:{users}(?:{host})|{bracketed}){_GONE}{_PORT}"
    return f"{start}(?:{netloc}){_REST}"


def dns_name(gap: str, after: str) -> str:
    """A DNS name as net.hosts reads one: labels of 1 to 63 letters, digits, "-" or "_", at
    most 253 characters without the final dot; ``gap`` may come between any two characters
    and ``after`` must follow."""
    label = f"(?:{gap}[A-Za-z0-9_-]){{1,63}}"
    length = f"(?=(?:{gap}[A-Za-z0-9_.-]){{1,253}}(?:{gap}\\.)?{after})"
    return f"{length}{label}(?:{gap}\\.{label})*(?:{gap}\\.)?"


def _not_ascii(gap: str) -> str:
    """A name with a character that is not ASCII, as far as it can be told before IDNA."""
    return f"(?:{gap}[A-Za-z0-9_.-])*{gap}{_IDNA_OTHER}(?:{gap}{_IDNA_CHAR})*"


def host_pattern() -> str:
    """An entry of settings.http.allow_hosts, as net.hosts.parse_pattern reads it."""
    name = dns_name("", f"(?:\\]|{WS}*{END})")
    not_ascii = _not_ascii("")
    host = f"{name}|{not_ascii}|{ipv6()}"
    return whole(f"{WS}*(?:\\*\\.(?:{name}|{not_ascii})|\\[(?:{host})\\]|{host}){WS}*")
