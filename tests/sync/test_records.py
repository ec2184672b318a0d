"""Record sources and rendering shared by the two sync operators (no Dify involved)."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dify.operators.sync._records import (
    RecordRenderer,
    check_one_source,
    list_records,
    metadata_value,
    read_records,
    render_all,
    sql_records,
    storage_records,
)
from tests.sync.conftest import WAREHOUSE_CONN_ID


def test_exactly_one_source_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one source"):
        check_one_source(records=None, sql=None, path=None, sql_conn_id=None)
    with pytest.raises(ValueError, match="exactly one source"):
        check_one_source(records=[], sql="SELECT 1", path=None, sql_conn_id="x")
    with pytest.raises(ValueError, match="sql_conn_id"):
        check_one_source(records=None, sql="SELECT 1", path=None, sql_conn_id=None)
    check_one_source(records=[], sql=None, path=None, sql_conn_id=None)


def test_callable_receives_the_context_variables_it_names() -> None:
    def source(ds: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"id": index, "day": ds} for index in range(params["count"])]

    rows = list(list_records({"ds": "2026-01-02", "params": {"count": 3}, "ti": object()}, source))
    assert rows == [{"id": 0, "day": "2026-01-02"}, {"id": 1, "day": "2026-01-02"}, {"id": 2, "day": "2026-01-02"}]


@pytest.mark.parametrize("records", ["not a list", {"id": 1}, [1, 2]])
def test_bad_records_name_the_argument(records: Any) -> None:
    with pytest.raises(ValueError, match="records"):
        list(list_records({}, records))


def test_sql_rows_come_with_column_names(warehouse: Path) -> None:
    rows = list(sql_records(WAREHOUSE_CONN_ID, "SELECT faq_id, question FROM faq WHERE category = ?", ["Returns"]))
    assert len(rows) == 5
    assert set(rows[0]) == {"faq_id", "question"}
    assert all(isinstance(row["faq_id"], int) for row in rows)


def test_sql_source_through_read_records(warehouse: Path) -> None:
    rows = list(read_records(None, sql="SELECT * FROM products", sql_conn_id=WAREHOUSE_CONN_ID))
    assert len(rows) == 240
    assert len({row["product_id"] for row in rows}) == 240


def test_files_under_a_prefix(tmp_path: Path) -> None:
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "setup.md").write_text("# Setup\nPlug it in.")
    (tmp_path / "faq.txt").write_text("Q: why? A: because.")
    rows = list(storage_records(f"file://{tmp_path}", "**/*", read_text=True))
    assert [row["path"] for row in rows] == ["faq.txt", "guides/setup.md"]
    assert rows[1]["name"] == "setup.md" and rows[1]["suffix"] == "md" and rows[1]["size"] == 19
    assert rows[1]["content"] == "# Setup\nPlug it in."
    only_md = list(storage_records(f"file://{tmp_path}", "**/*.md"))
    assert [row["path"] for row in only_md] == ["guides/setup.md"]


def test_missing_prefix_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"path: .* does not exist"):
        list(storage_records(f"file://{tmp_path}/nope"))


def test_rendering_with_templates_and_metadata() -> None:
    renderer = RecordRenderer(
        key_field="sku",
        name_prefix="product-",
        text_template="{{ name }} costs {{ price }} EUR.",
        metadata_fields={"category": "category", "price": "price_eur"},
    )
    [item] = renderer_output(renderer, [{"sku": "A-1", "name": "Kettle", "price": 25.5, "category": "Kitchen"}])
    assert item.key == "A-1"
    assert item.name == "product-A-1"
    assert item.text == "Kettle costs 25.5 EUR."
    assert item.metadata == {"category": "Kitchen", "price_eur": 25.5}


def test_default_text_lists_the_columns_but_the_key() -> None:
    [item] = renderer_output(RecordRenderer(key_field="id"), [{"id": 7, "title": "Lamp", "note": None}])
    assert item.text == "title: Lamp"


def test_callables_render_name_and_text() -> None:
    renderer = RecordRenderer(
        name_template=lambda record: f"doc {record['a']}-{record['b']}",
        text_template=lambda record: f"{record['a']} and {record['b']}",
    )
    [item] = renderer_output(renderer, [{"a": 1, "b": 2}])
    assert (item.name, item.text, item.key) == ("doc 1-2", "1 and 2", None)


def test_argument_errors_are_raised_before_anything_is_written() -> None:
    with pytest.raises(ValueError, match="key_field: the records have no column 'id'"):
        render_all(RecordRenderer(key_field="id"), [{"sku": 1}])
    with pytest.raises(ValueError, match="same key 'x'"):
        render_all(RecordRenderer(key_field="id"), [{"id": "x", "t": 1}, {"id": "x", "t": 2}])
    with pytest.raises(ValueError, match="same document name"):
        render_all(RecordRenderer(key_field="id", name_template="n"), [{"id": 1, "t": "a"}, {"id": 2, "t": "b"}])
    with pytest.raises(ValueError, match="text_template: the template does not parse"):
        RecordRenderer(key_field="id", text_template="{{ broken")
    with pytest.raises(ValueError, match="metadata_fields: the records have no column 'price'"):
        render_all(RecordRenderer(key_field="id", metadata_fields=["price"]), [{"id": 1, "t": "x"}])


def test_bad_records_are_failures_not_errors() -> None:
    renderer = RecordRenderer(key_field="id", text_template="{{ body }}")
    rendered, failures = render_all(
        renderer, [{"id": 1, "body": "ok"}, {"id": 2, "body": "  "}, {"id": None, "body": "x"}]
    )
    assert [item.key for item in rendered] == ["1"]
    assert [failure["key"] for failure in failures] == ["2", None]
    assert "rendered empty" in failures[0]["error"]
    assert "is empty" in failures[1]["error"]


def test_unknown_template_variable_is_an_argument_error() -> None:
    with pytest.raises(ValueError, match="text_template: 'nope' is undefined; the records' columns are id"):
        render_all(RecordRenderer(key_field="id", text_template="{{ nope }}"), [{"id": 1}])


def test_a_template_failing_on_one_record_fails_that_record() -> None:
    renderer = RecordRenderer(key_field="id", text_template="{{ 10 // n }}")
    rendered, failures = render_all(renderer, [{"id": 1, "n": 2}, {"id": 2, "n": 0}])
    assert [item.text for item in rendered] == ["5"]
    assert failures[0]["key"] == "2" and "ZeroDivisionError" in failures[0]["error"]


def test_keywords_and_answers_for_chunks() -> None:
    renderer = RecordRenderer(
        key_field="id", text_template="{{ q }}", answer_template="{{ a }}", keywords_field="tags", names=False
    )
    [item] = renderer_output(renderer, [{"id": 1, "q": "Why?", "a": "Because.", "tags": "why, because ,"}])
    assert (item.answer, item.keywords, item.name) == ("Because.", ["why", "because"], "")


def test_metadata_values_become_strings_or_numbers() -> None:
    assert metadata_value(decimal.Decimal("12.50")) == 12.5
    assert metadata_value(decimal.Decimal("3")) == 3
    assert metadata_value(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert metadata_value(True) == "true"
    assert metadata_value(None) is None


def test_content_hash_changes_with_the_text_and_the_settings() -> None:
    renderer = RecordRenderer(key_field="id", text_template="{{ t }}")
    first, second, third = renderer_output(renderer, [{"id": 1, "t": "a"}, {"id": 2, "t": "a"}, {"id": 3, "t": "b"}])
    assert first.content_hash() == second.content_hash() != third.content_hash()
    fresh = renderer_output(renderer, [{"id": 1, "t": "a"}])[0]
    assert fresh.content_hash({"process_rule": {"mode": "custom"}}) != first.content_hash()


def renderer_output(renderer: RecordRenderer, records: list[dict[str, Any]]) -> list[Any]:
    rendered, failures = render_all(renderer, records)
    assert failures == []
    return rendered
