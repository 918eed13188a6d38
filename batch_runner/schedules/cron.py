"""``schedule_type: "cron"``: a standard 5-field expression, checked field by field.

cronsim is the authority for what an expression matches: once the fields pass the checks here,
it expands each into the set of values it means. It is healthchecks.io's parser (its cron checks
run on it): pure Python, small, no dependencies, and it follows Debian's cron where crons
differ (a day field starting with ``*`` joins the two day fields with AND, else with OR). The
checks here come first because its own messages ("Bad hour") name neither the value nor what is
allowed. It is imported only when a cron schedule is parsed, never on the CLI's hot paths.

Accepted is what cron itself takes: numbers, the names jan-dec and sun-sat (any case), ``*``,
ranges, lists and steps (``a/n`` means ``a-<last>/n``, as in cronsim and Debian's cron); 7 and
0 are both Sunday; the macros ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly``,
``@yearly`` (``@annually``). Refused: a sixth (seconds or year) field, ``@reboot`` (that is
``schedule_type: "startup"``), cronsim's extensions ``L``, ``W`` and ``#`` (a crontab would
refuse the line ``cron NAME`` prints), and an expression that can never fire (``0 0 30 2 *``).
"""

from __future__ import annotations

import calendar
import difflib
import re
from datetime import datetime, time

from batch_runner.schedules.kinds import CronSchedule, ScheduleError
from batch_runner.schedules.parse import show

_MONTHS = tuple(name.lower() for name in calendar.month_abbr[1:])  # jan = 1
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # sun = 0, as cron counts
# name, lowest, highest, what is allowed, names (the first name is the lowest value)
_FIELDS = (
    ("minute", 0, 59, "minutes are 0-59", ()),
    ("hour", 0, 23, "hours are 0-23", ()),
    ("day-of-month", 1, 31, "days of the month are 1-31", ()),
    ("month", 1, 12, "months are 1-12 or jan-dec", _MONTHS),
    ("day-of-week", 0, 7, "days of the week are 0-7 (0 and 7 are Sunday) or sun-sat", _DAYS),
)
_FULL_NAMES = {name.lower(): name[:3].lower() for name in calendar.month_name[1:]} | {
    name.lower(): name[:3].lower() for name in calendar.day_name
}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NUMBER = re.compile(r"[0-9]+")
_EXTENSION = re.compile(r"[0-9]*(LW|L|W)|.*?([#?]).*", re.IGNORECASE)
_FIVE = '5 (minute hour day-of-month month day-of-week), such as "30 7 * * 1-5"'
_SHAPE = f"{_FIVE[:1]} fields{_FIVE[1:]}"


def parse_cron(value: object) -> CronSchedule:
    """The cron schedule ``value`` writes; ScheduleError, one sentence per bad field, if not."""
    if not isinstance(value, str):
        raise ScheduleError(f"cron schedule_time {show(value)} is not a string; use {_SHAPE}.")
    words = value.split()
    if words and words[0].startswith("@"):
        expression, fields = _macro(value, words), tuple(MACROS[words[0].lower()].split())
    else:
        expression, fields = " ".join(words), tuple(words)
    if len(fields) != 5:
        extra = "; a seconds or a year field is not supported" if len(fields) in (6, 7) else ""
        raise ScheduleError(
            f"cron schedule_time {show(value)} has {len(fields)} fields; cron takes {_FIVE}{extra}."
        )
    problems = [p for p in (_field_problem(i, text) for i, text in enumerate(fields)) if p]
    if problems:
        raise ScheduleError(f"cron schedule_time {show(value)}: " + ". Also: ".join(problems) + ".")
    _refuse_never(value, fields)
    return _expanded(value, expression, fields)


def _macro(value: str, words: list[str]) -> str:
    macro = words[0].lower()
    if macro == "@reboot":
        raise ScheduleError(
            f"cron schedule_time {show(value)} is cron's @reboot; use schedule_type "
            '"startup" (with no schedule_time) for a job that runs when the scheduler starts.'
        )
    if macro not in MACROS:
        raise ScheduleError(
            f"cron schedule_time {show(value)}: {show(words[0])} is not one of @hourly, @daily, "
            f"@weekly, @monthly, @yearly (or @midnight, @annually); or use {_SHAPE}."
        )
    if len(words) > 1:
        raise ScheduleError(
            f"cron schedule_time {show(value)}: {macro} stands alone, with nothing after it."
        )
    return macro


def _field_problem(index: int, text: str) -> str | None:
    name, low, high, allowed, _ = _FIELDS[index]
    where = f"the {name} field {show(text)}"
    for term in text.split(","):
        if not term:
            return f"{where} has an empty item; {allowed}"
        base, slash, step = term.partition("/")
        if slash and not (_NUMBER.fullmatch(step) and int(step) > 0):
            return f"{where} has the step {show(step)}; a step is a whole number of 1 or more"
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        if dash and not (start and end):
            side = "an end" if start else "a start"
            return f"{where} has a range without {side}; {allowed}"
        for word in (start, end) if dash else (start,):
            problem = _word_problem(word, index)
            if problem:
                at = where if word == text else f"{where}: {show(word)}"
                return f"{at} {problem}; {allowed}"
        if dash and _number(start, index) > _number(end, index):
            a, b = _number(start, index), _number(end, index)
            high = 6 if index == 4 else high  # 7 is Sunday again
            return (
                f"{where if term == text else f'{where}: {show(term)}'} is a range that runs "
                f'backwards; cron ranges do not wrap around, so use two, such as "{a}-{high},'
                f'{low}-{b}"'
            )
    return None


def _word_problem(word: str, index: int) -> str | None:
    _, low, high, _, names = _FIELDS[index]
    if _NUMBER.fullmatch(word):
        return None if low <= int(word) <= high else "is out of range"
    if word.lower() in names:
        return None
    extension = _EXTENSION.fullmatch(word)
    if extension:
        mark = (extension[1] or extension[2]).upper()
        return f'uses "{mark}", an extension some crons have and standard cron does not take'
    if not names:
        return "is not a number"
    kind = "month" if index == 3 else "day"
    choices = {**{n: n for n in names}, **{k: v for k, v in _FULL_NAMES.items() if v in names}}
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    hint = f' (did you mean "{choices[close[0]]}"?)' if close else ""
    return f"is not a number or a {kind} name{hint}"


def _number(word: str, index: int) -> int:
    names = _FIELDS[index][4]
    if word.lower() in names:
        return names.index(word.lower()) + _FIELDS[index][1]
    return int(word)


def _values(text: str, index: int) -> set[int]:
    """The values a checked field names (cronsim's own expansion is used for matching)."""
    _, low, high, _, _ = _FIELDS[index]
    values: set[int] = set()
    for term in text.split(","):
        base, _, step = term.partition("/")
        start, dash, end = base.partition("-")
        first = low if base == "*" else _number(start, index)
        last = _number(end, index) if dash else (high if base == "*" or step else first)
        values.update(range(first, last + 1, int(step or 1)))
    return values


def _refuse_never(value: str, fields: tuple[str, ...]) -> None:
    # Both day fields restricted: either matches, and some weekday comes every week. A day of the
    # month starting with "*" names the 1st. Left: a star in the day of the week only, where the
    # day of the month has to exist in a month named; any day that exists comes round on every
    # day of the week within 28 years, so nothing else can keep an expression from firing.
    if fields[2].startswith("*") or not fields[4].startswith("*"):
        return
    days, months = _values(fields[2], 2), sorted(_values(fields[3], 3))
    day = min(days)
    if any(day <= calendar.monthrange(2000, month)[1] for month in months):  # 2000: a leap year
        return
    names = [calendar.month_name[m] for m in months]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    verb = "has" if len(names) == 1 else "have"
    raise ScheduleError(
        f"cron schedule_time {show(value)} never fires: {listed} {verb} no day {day}."
    )


def _expanded(value: str, expression: str, fields: tuple[str, ...]) -> CronSchedule:
    from cronsim import CronSim, CronSimError

    try:
        # The start only anchors iteration, which is not used: only the expanded fields are.
        sim = CronSim(" ".join(fields), datetime(2000, 1, 1))
    except CronSimError as exc:  # a case the checks above missed: still one sentence
        raise ScheduleError(
            f"cron schedule_time {show(value)} is not a cron expression cronsim takes ({exc})."
        ) from exc
    return CronSchedule(
        expression=expression,
        fields=fields,
        times=tuple(time(h, m) for h in sorted(sim.hours) for m in sorted(sim.minutes)),
        days=frozenset(sim.days),
        months=frozenset(sim.months),
        weekdays=frozenset((d + 6) % 7 for d in sim.weekdays if isinstance(d, int)),  # Sunday: 6
        either_day=not sim.day_and,
    )
