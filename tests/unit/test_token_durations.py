"""A token's lifetime is read strictly: a whole number of minutes, hours or days."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.tokens import MAX_LIFETIME, parse_duration
from ledger.exceptions import InvalidCommand


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("90d", timedelta(days=90)),
        ("1m", timedelta(minutes=1)),
        ("1440m", timedelta(days=1)),
        ("3650d", MAX_LIFETIME),
    ],
)
def test_a_duration_is_a_whole_number_and_a_unit(text: str, lifetime: timedelta) -> None:
    """Minutes, hours and days become the lifetime they name."""
    assert parse_duration(text) == lifetime


@pytest.mark.parametrize(
    "text",
    [
        "",
        "90",
        "d",
        "90D",
        "90 d",
        " 90d",
        "90d ",
        "+90d",
        "-5d",
        "1.5h",
        "90s",
        "2w",
        "1h30m",
        "\u0669\u0660d",  # Arabic-Indic 90, which int() would take
        "12345678d",
    ],
)
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    """Signs, spaces, fractions, other units or digits are refused with the usage and value."""
    with pytest.raises(InvalidCommand) as refused:
        parse_duration(text, field="--expires-in")

    assert refused.value.field == "--expires-in"
    assert refused.value.detail == (
        "--expires-in must be a whole number of minutes, hours or days, "
        f"like 30m, 12h or 90d, not {text!r}"
    )


@pytest.mark.parametrize("text", ["0m", "0h", "0d", "000d"])
def test_a_zero_lifetime_is_refused(text: str) -> None:
    """A token that expires as it is made is a mistake, not a request."""
    with pytest.raises(InvalidCommand, match="must be more than zero"):
        parse_duration(text)


def test_a_lifetime_beyond_ten_years_is_refused() -> None:
    """Past the longest lifetime the answer says to leave the option out instead."""
    with pytest.raises(InvalidCommand) as refused:
        parse_duration("3651d")

    assert "at most 3650d" in refused.value.detail
    assert "never expires" in refused.value.detail
