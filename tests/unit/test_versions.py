"""Record versions: every kind the source may hold orders as the source means, and what cannot be ordered fails."""

from __future__ import annotations

import datetime
import decimal

import pendulum
import pytest

from airflow_provider_dify.operators.sync._versions import VERSION_FIELD, VersionKinds, parse_version, stored_version

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        (9, 10),
        (1.5, 2),
        (decimal.Decimal("1.10"), decimal.Decimal("1.2")),
        (datetime.date(2026, 1, 3), datetime.date(2026, 1, 5)),
        (datetime.datetime(2026, 1, 5, 10), datetime.datetime(2026, 1, 5, 10, 0, 1)),
        (pendulum.datetime(2026, 1, 5, 12, tz="Europe/Berlin"), datetime.datetime(2026, 1, 5, 11, 30, tzinfo=UTC)),
        ("2026-01-03", "2026-01-05"),
        ("2026-01-05T10:00:00Z", "2026-01-05T10:00:00.5+00:00"),
        ("2026-01-06T00:30:00Z", "2026-01-05 23:00:00-02:00"),  # offsets count: the second is 01:00Z
    ],
)
def test_versions_order_as_the_source_means(older: object, newer: object) -> None:
    assert parse_version(older) < parse_version(newer)
    kind = parse_version(newer).kind
    # what Dify keeps reads back as the same version
    held = stored_version({VERSION_FIELD: parse_version(newer).text}, kind, document="note-1")
    assert held == parse_version(newer) and parse_version(older) < held


@pytest.mark.parametrize("value", [None, True, float("nan"), "yesterday", "", object(), [1]])
def test_values_that_cannot_be_ordered_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_version(value)


def test_a_source_mixing_kinds_fails_naming_the_record_and_the_field() -> None:
    kinds = VersionKinds("updated_at")
    kinds.read({"updated_at": "2026-01-05T10:00:00"}, "1")
    message = r"record '2' has a number in 'updated_at' \(5\) but record '1' has a datetime"
    with pytest.raises(ValueError, match=message):
        kinds.read({"updated_at": 5}, "2")


def test_a_version_held_in_another_kind_fails_naming_the_document() -> None:
    with pytest.raises(ValueError, match="document 'note-7' holds version '2026-01-05'"):
        stored_version({VERSION_FIELD: "2026-01-05"}, "number", document="note-7")
