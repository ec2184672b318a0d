"""The sync operators' SQL read reports common-sql's hook lineage, as ``DbApiHook.run`` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_dify.operators.sync._records import sql_records
from tests.sync.conftest import WAREHOUSE_CONN_ID


def test_the_sql_read_reports_common_sql_hook_lineage(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As DbApiHook.run does, so OpenLineage's hook-level lineage sees the query."""
    import airflow.providers.common.sql.hooks.lineage as sql_lineage
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:  # a collecting collector (without a lineage reader, Airflow 3's discards)
        from airflow.sdk.lineage import HookLineageCollector

        collector = HookLineageCollector()
        monkeypatch.setattr(sql_lineage, "get_hook_lineage_collector", lambda: collector)
    else:  # common-compat's collector for 2.11 collects
        collector = sql_lineage.get_hook_lineage_collector()
    sql = "SELECT faq_id, question FROM faq WHERE category = ?"
    rows = list(sql_records(WAREHOUSE_CONN_ID, sql, ["Care"]))
    assert len(rows) == 7
    [entry] = [
        item
        for item in collector.collected_assets.extra
        if item.key == "sql_job" and item.value == {"sql": sql, "sql_parameters": ["Care"]}
    ]
    assert type(entry.context).__name__ == "SqliteHook"
