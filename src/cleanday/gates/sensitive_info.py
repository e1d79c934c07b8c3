"""The sensitive-info gate: emails, phones, SSNs, card numbers, IP addresses, custom patterns.

Options:
- `kinds`: which built-in detectors to run (default all: email, card, ssn, phone, ipv4, ipv6);
- `patterns`: custom detectors, a mapping {name: regex} or a list of regexes;
- `scan_input`: also scan the run's input (default false).
Mode `block` fails the gate on any finding. Mode `redact` replaces each finding in the output with
`[REDACTED:<kind>]` and passes. The input cannot be redacted after the model saw it, so a finding
in the input fails the gate in either mode; `redact_input` lets the runtime clean it beforehand.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cleanday.errors import ConfigError
from cleanday.gates.base import GateCheck, Verdict
from cleanday.steps import Action

NAME = "sensitive_info"


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    if text.count(":") < 2 or text.strip(":") == "":
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_phone(text: str) -> bool:
    # Ten digits is the shortest number with an area code; shorter digit groups are
    # amounts ("12 500 000 users"), not phone numbers.
    return 10 <= sum(ch.isdigit() for ch in text) <= 15


Validator = Callable[[str], bool]
Span = tuple[int, int]
# A finder yields candidate spans; `taken` says whether a span overlaps an earlier finding.
Finder = Callable[[str, Callable[[Span], bool]], Iterator[Span]]

_DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)*")
_DIGITS = re.compile(r"\d+")


def _cards(text: str, taken: Callable[[Span], bool]) -> Iterator[Span]:
    """Card numbers as people write them: 13-19 digits, alone or in groups of three or more
    split by spaces or hyphens, passing the Luhn check. Every window of whole groups is tried,
    so a card next to other numbers ("order 42 4111 1111 1111 1111") is still found."""
    for run in _DIGIT_RUN.finditer(text):
        groups = [
            (run.start() + g.start(), run.start() + g.end(), g.group(0))
            for g in _DIGITS.finditer(run.group(0))
        ]
        i = 0
        while i < len(groups):
            # windows of whole groups starting at i that hold at most 19 digits, longest first
            windows: list[tuple[int, str]] = []
            digits = ""
            for j in range(i, len(groups)):
                # written cards group their digits by 4 (Amex 4-6-5); "1 2 3 ..." is a list
                if j > i and (len(groups[i][2]) < 4 or len(groups[j][2]) < 3):
                    break
                digits += groups[j][2]
                if len(digits) > 19:
                    break
                windows.append((j, digits))
            for j, candidate in reversed(windows):
                span = (groups[i][0], groups[j][1])
                if len(candidate) >= 13 and luhn_valid(candidate) and not taken(span):
                    yield span
                    i = j
                    break
            i += 1


def _regex(rx: re.Pattern[str], valid: Validator | None = None) -> Finder:
    def find(text: str, taken: Callable[[Span], bool]) -> Iterator[Span]:
        pos = 0
        while (m := rx.search(text, pos)) is not None:
            span = (m.start(), m.end())
            if m.group(0) and (valid is None or valid(m.group(0))) and not taken(span):
                yield span
                pos = max(m.end(), m.start() + 1)
            else:
                # A rejected candidate may hide a shorter valid one that starts inside it.
                pos = m.start() + 1

    return find


# Order matters: a span claimed by an earlier detector is not reported again by a later one
# (a card number is not also a phone number).
BUILTIN: dict[str, Finder] = {
    "email": _regex(
        re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}(?![\w-])"),
    ),
    "card": _cards,
    "ssn": _regex(
        re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
    ),
    "ipv6": _regex(
        re.compile(r"(?<![\w:.])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?![\w:])"),
        _is_ipv6,
    ),
    "ipv4": _regex(
        re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)"),
        _is_ipv4,
    ),
    "phone": _regex(
        re.compile(
            r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])"
            r"\d{3,4}[ .-]?\d{3,4}(?![\w-])"
        ),
        _is_phone,
    ),
}


def _custom(patterns: Any) -> dict[str, re.Pattern[str]]:
    if not patterns:
        return {}
    items: Iterable[tuple[str, str]]
    if isinstance(patterns, Mapping):
        items = ((str(k), str(v)) for k, v in patterns.items())
    elif isinstance(patterns, list | tuple):
        items = ((f"pattern_{i + 1}", str(p)) for i, p in enumerate(patterns))
    else:
        raise ConfigError(
            "sensitive_info gate: options.patterns must be a mapping {name: regex} or a list"
        )
    compiled: dict[str, re.Pattern[str]] = {}
    for name, regex in items:
        try:
            compiled[name] = re.compile(regex)
        except re.error as exc:
            raise ConfigError(
                f"sensitive_info gate: custom pattern {name} ({regex!r}) is not a valid "
                f"regular expression: {exc}"
            ) from exc
    return compiled


class Scanner:
    """Finds sensitive spans in text; built once per gate from its options."""

    def __init__(self, kinds: Iterable[str] | None = None, patterns: Any = None) -> None:
        wanted = list(BUILTIN) if kinds is None else list(kinds)
        unknown = [k for k in wanted if k not in BUILTIN]
        if unknown:
            raise ConfigError(
                f"sensitive_info gate: unknown kind(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(BUILTIN)}"
            )
        self._detectors: list[tuple[str, Finder]] = [
            (k, BUILTIN[k]) for k in BUILTIN if k in wanted
        ]
        self._detectors += [(name, _regex(rx)) for name, rx in _custom(patterns).items()]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Scanner:
        return cls(options.get("kinds"), options.get("patterns"))

    def scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        # findings never overlap, so sorted starts and ends answer "is this span taken?"
        starts: list[int] = []
        ends: list[int] = []

        def taken(span: Span) -> bool:
            i = bisect.bisect_left(starts, span[1])  # findings starting before the span ends
            return i > 0 and ends[i - 1] > span[0]

        for kind, finder in self._detectors:
            for start, end in finder(text, taken):
                i = bisect.bisect_left(starts, start)
                starts.insert(i, start)
                ends.insert(i, end)
                found.append(Finding(kind, start, end, text[start:end]))
        return sorted(found, key=lambda f: f.start)

    def redact_text(self, text: str) -> tuple[str, list[Finding]]:
        findings = self.scan(text)
        out, pos = [], 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(f"[REDACTED:{f.kind}]")
            pos = f.end
        out.append(text[pos:])
        return "".join(out), findings

    def scan_value(self, value: Any) -> list[Finding]:
        """Every finding in a string or in the strings of a JSON-like value (keys included)."""
        return [f for text in _strings(value) for f in self.scan(text)]

    def redact_value(self, value: Any) -> tuple[Any, list[Finding]]:
        findings: list[Finding] = []

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                red, fs = self.redact_text(v)
                findings.extend(fs)
                return red
            if isinstance(v, dict):
                return {walk(k): walk(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [walk(x) for x in v]
            return v

        return walk(value), findings


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def describe(findings: list[Finding]) -> str:
    """'2 email, 1 card' — what was found, never the sensitive text itself."""
    counts = Counter(f.kind for f in findings)
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def redact_input(options: Mapping[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """The run's input with findings redacted, for the runtime to call before the step runs."""
    red, _ = Scanner.from_options(options).redact_value(value)
    return dict(red)


def check(c: GateCheck) -> Verdict:
    try:
        scanner = Scanner.from_options(c.options)
    except ConfigError as exc:
        return Verdict(False, str(exc))
    problems: list[str] = []
    if c.options.get("scan_input") and c.context.input:
        in_input = scanner.scan_value(c.context.input)
        if in_input:
            problems.append(f"input holds {describe(in_input)}")
    if c.mode == "redact":
        output, found = scanner.redact_value(c.output)
        actions: list[Action] = []
        for action in c.actions:
            payload, in_action = scanner.redact_value(action.payload)
            found += in_action
            actions.append(Action(action.kind, action.target, payload))
        redacted = bool(found)
        new_actions = tuple(actions) if redacted else None
        if problems:
            return Verdict(False, "; ".join(problems), output, redacted, new_actions)
        if found:
            return Verdict(True, f"redacted {describe(found)}", output, True, new_actions)
        return Verdict(True, "no sensitive info found", c.output)
    in_output = scanner.scan_value(c.output)
    if in_output:
        problems.append(f"output holds {describe(in_output)}")
    in_actions = [f for a in c.actions for f in scanner.scan_value(a.payload)]
    if in_actions:
        problems.append(f"actions hold {describe(in_actions)}")
    if problems:
        return Verdict(False, "; ".join(problems), c.output)
    return Verdict(True, "no sensitive info found", c.output)
