from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanday.errors import ConfigError
from cleanday.gates import GateContext, evaluate
from cleanday.gates.sensitive_info import Scanner, luhn_valid
from cleanday.steps import StepResult
from tests.unit.fakes import completion, work_order


def kinds(text: str, **kw: Any) -> list[str]:
    return [f.kind for f in Scanner(**kw).scan(text)]


def gate(output: Any, *, mode: str = "block", input: Any = None, **options: Any) -> Any:
    wo = work_order(gates=[{"name": "sensitive_info", "mode": mode, "options": options}])
    step = StepResult(output=output, summary="", completions=[completion()])
    report = evaluate(wo, step, GateContext(input=input))
    return report, next(r for r in report.results if r.name == "sensitive_info")


@pytest.mark.parametrize(
    "number",
    ["4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
)
def test_card_numbers_that_pass_luhn_are_found(number: str) -> None:
    assert kinds(f"card: {number}.") == ["card"]


@pytest.mark.parametrize("number", ["4111111111111112", "1234 5678 9012 3456", "378282246310006"])
def test_digit_runs_that_fail_luhn_are_not_cards(number: str) -> None:
    assert "card" not in kinds(f"order {number} shipped")


def test_luhn_checksum() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert not luhn_valid("7992a398713")


def test_email_is_found() -> None:
    assert kinds("write to ada.lovelace+ops@example.co.uk today") == ["email"]


@pytest.mark.parametrize("phone", ["555-867-5309", "(415) 555-2671", "+44 20 7946 0958"])
def test_phone_numbers_are_found(phone: str) -> None:
    assert kinds(f"call {phone} now") == ["phone"]


@pytest.mark.parametrize(
    "text",
    [
        "on 2026-11-21 at 07:00",
        "version 1.2.3",
        "42 posts, 7 days",
        "12 500 000 users",
        "12-345-678",
    ],
)
def test_dates_versions_and_counts_are_not_phone_numbers(text: str) -> None:
    assert kinds(text) == []


def test_ssn_is_found_and_invalid_area_numbers_are_not() -> None:
    assert kinds("ssn 123-45-6789") == ["ssn"]
    assert kinds("ssn 000-45-6789 or 666-12-3456") == []


def test_ipv4_is_found_and_out_of_range_octets_are_not() -> None:
    assert kinds("from 192.168.10.20 ok") == ["ipv4"]
    assert kinds("from 999.168.10.20 ok") == []


@pytest.mark.parametrize("addr", ["2001:db8::8a2e:370:7334", "::1", "fe80::1ff:fe23:4567:890a"])
def test_ipv6_is_found(addr: str) -> None:
    assert kinds(f"peer {addr} connected") == ["ipv6"]


@pytest.mark.parametrize("text", ["at 10:30:00 sharp", "std::vector", "ratio 3:2"])
def test_times_and_code_are_not_ipv6(text: str) -> None:
    assert "ipv6" not in kinds(text)


def test_custom_patterns_are_found_by_their_name() -> None:
    assert kinds("ticket ACME-12345 open", patterns={"ticket": r"ACME-\d{5}"}) == ["ticket"]
    assert kinds("ticket ACME-12345 open", patterns=[r"ACME-\d+"]) == ["pattern_1"]


def test_kinds_option_limits_the_detectors() -> None:
    assert kinds("ada@example.com 192.168.1.1", kinds=["ipv4"]) == ["ipv4"]


def test_unknown_kind_and_bad_regex_are_config_errors_that_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        Scanner(kinds=["passport"])
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Scanner(patterns={"bad": "("})


def test_block_mode_fails_and_names_what_it_found_but_not_the_value() -> None:
    report, result = gate("reach me at ada@example.com or 555-867-5309")
    assert report.blocked
    assert not result.passed
    assert result.reason == "output holds 1 email, 1 phone"
    assert "ada@" not in result.reason


def test_redact_mode_replaces_findings_and_passes() -> None:
    report, result = gate(
        "ada@example.com paid with 4111 1111 1111 1111 from 10.0.0.1", mode="redact"
    )
    assert not report.blocked
    assert result.passed
    assert report.output == "[REDACTED:email] paid with [REDACTED:card] from [REDACTED:ipv4]"
    assert "redacted 1 email, 1 card, 1 ipv4" in result.reason


def test_redact_mode_walks_structured_output() -> None:
    report, _ = gate({"posts": [{"author": "ada@example.com", "n": 1}]}, mode="redact")
    assert report.output == {"posts": [{"author": "[REDACTED:email]", "n": 1}]}


def test_input_is_scanned_only_when_configured() -> None:
    _, off = gate("fine", input={"from": "ada@example.com"})
    _, on = gate("fine", input={"from": "ada@example.com"}, scan_input=True)
    assert off.passed
    assert not on.passed and on.reason == "input holds 1 email"


def test_input_findings_fail_even_in_redact_mode_because_the_model_already_saw_them() -> None:
    report, result = gate("fine", mode="redact", input={"ip": "10.0.0.1"}, scan_input=True)
    assert report.blocked and not result.passed


def _with_check_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError("no check digit")


@settings(deadline=None)  # the machine is shared; slowness is not a failure here
@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_any_luhn_valid_card_length_number_is_found(body: str) -> None:
    number = _with_check_digit(body)
    assert kinds(f"pay {number} today", kinds=["card"]) == ["card"]
    # changing one digit breaks the checksum
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert kinds(f"pay {broken} today", kinds=["card"]) == []


@settings(deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "ada@example.com",
                "555-867-5309",
                "123-45-6789",
                "10.1.2.3",
                "2001:db8::1",
                "4111 1111 1111 1111",
                "plain words",
                "order 42",
                " ",
                "\n",
            ]
        ),
        max_size=8,
    )
)
def test_redacted_text_holds_nothing_more_to_redact(parts: list[str]) -> None:
    scanner = Scanner()
    text = " ".join(parts)
    redacted, _ = scanner.redact_text(text)
    assert scanner.scan(redacted) == []
    assert scanner.redact_text(redacted)[0] == redacted


def test_a_card_next_to_other_numbers_is_still_found_whole() -> None:
    scanner = Scanner()
    text = "order 42 555-867-5309 4111 1111 1111 1111"
    assert [(f.kind, f.text) for f in scanner.scan(text)] == [
        ("phone", "555-867-5309"),
        ("card", "4111 1111 1111 1111"),
    ]


def test_a_list_of_small_numbers_is_not_a_card() -> None:
    # 4 1 1 1 ... is Luhn-valid as one digit string, but nobody writes a card that way
    assert kinds("counts: 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", kinds=["card"]) == []


def test_a_megabyte_of_ordinary_text_scans_in_well_under_a_few_seconds() -> None:
    import time

    text = "lorem ipsum dolor sit amet, 2026-11-21 version 1.2.3 " * 20000
    started = time.perf_counter()
    assert Scanner().scan(text) == []
    assert time.perf_counter() - started < 5
