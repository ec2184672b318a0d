"""
Retrieval smoke check that runs when a sync changed a knowledge base: a DAG scheduled on Dify asset events.

The writing operators of ``example_dify_warehouse_export`` name their knowledge base in the file, so each change
is an event of its asset ``dify-knowledge-base://dify_default/<name>``
(:func:`~airflow_provider_dify.assets.knowledge_base_named`), and this DAG is scheduled on it: it works before the
knowledge base exists (the export creates it). A run that changed nothing emits no event, so this DAG does not
run after it. Writers that know their knowledge base only at run time report through the alias instead
(``schedule=[knowledge_base_alias()]``); with a known id, schedule on ``knowledge_base_asset(dataset_id)``.

* ``what_changed``: logs the triggering events' ``extra`` (``created``, ``updated``, ``deleted``, ``batches``...);
  skips the check when the events only created an empty knowledge base or were about another one.
* ``retrieve`` + ``check_hits``: a keyword search of the knowledge base that must find something.

Settings: ``DIFY_EXAMPLE_KNOWLEDGE_BASE`` (read when the file is parsed; default ``airflow-example-warehouse``,
the export's), the DAG param ``smoke_query`` (default from ``DIFY_EXAMPLE_SMOKE_QUERY``, else ``Espresso``). The
Dify connection is ``dify_default``.

The scheduler may start one run for all the export's events or one per event, so the check must pass on any of
them alone: the default query is in product names (``Espresso Machine``) and in an FAQ answer, written so, as
Dify's keyword search is case-sensitive (``espresso`` finds only the FAQ, ``grinder`` only an FAQ entry).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, AirflowException, AirflowSkipException, Param, task

from airflow_provider_dify.assets import knowledge_base_named
from airflow_provider_dify.operators.retrieval import DifyRetrieveOperator

DAG_ID = "example_dify_knowledge_base_changed"
#: The export's knowledge base (the same setting).
KNOWLEDGE_BASE = os.environ.get("DIFY_EXAMPLE_KNOWLEDGE_BASE", "airflow-example-warehouse")


def content_changes(events: Any, knowledge_base: str) -> list[dict[str, Any]]:
    """The ``extra`` of the triggering events that wrote documents or chunks of the knowledge base named so."""
    changes = []
    for asset_events in (events or {}).values():
        for event in asset_events:
            extra = dict(getattr(event, "extra", None) or {})
            if extra.get("dataset_name") == knowledge_base and extra.get("granularity") != "knowledge_base":
                changes.append(extra)
    return changes


with DAG(
    DAG_ID,
    description="Retrieval smoke check, run when a Dify sync changed the knowledge base",
    schedule=[knowledge_base_named(KNOWLEDGE_BASE)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "smoke_query": Param(os.environ.get("DIFY_EXAMPLE_SMOKE_QUERY", "Espresso"), type="string", maxLength=250),
    },
    tags=["dify", "example"],
) as dag:

    @task(task_id="what_changed")
    def what_changed(**context: Any) -> dict[str, Any]:
        """Log the triggering changes; skip when none wrote content to this knowledge base."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events")
        name = KNOWLEDGE_BASE
        changes = content_changes(events, name)
        if events and not changes:
            raise AirflowSkipException(f"No triggering event wrote documents or chunks of {name!r}.")
        for extra in changes:
            written = {count: extra.get(count) for count in ("created", "updated", "deleted", "unchanged")}
            print(f"{extra['granularity']} of {name!r} changed: {written}")
        return {"changes": changes}

    retrieve = DifyRetrieveOperator(
        task_id="retrieve",
        dataset_name=KNOWLEDGE_BASE,
        query="{{ params.smoke_query }}",
        top_k=3,
    )

    @task(task_id="check_hits")
    def check_hits(result: dict[str, Any]) -> int:
        """Fail unless the smoke query found something."""
        records = result.get("records") or []
        if not records:
            raise AirflowException(f"The smoke query {result.get('query')!r} found nothing after the change.")
        return len(records)

    what_changed() >> retrieve
    check_hits(retrieve.output)
