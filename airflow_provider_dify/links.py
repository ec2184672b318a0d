"""The "Dify" button of the provider's operators: it opens the knowledge base or document in the Dify console.

An operator pushes the console URL of what it worked on to XCom under :data:`CONSOLE_URL_XCOM_KEY` while it
executes; :class:`DifyConsoleLink` reads it back. On Airflow 3 the worker calls ``get_link`` when the task
ends and stores the result for the UI; on Airflow 2.11 the webserver calls it. Both read the same XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

#: The XCom key under which an operator stores the console URL of its knowledge base or document.
CONSOLE_URL_XCOM_KEY = "dify_console_url"


def console_url(console: str, dataset_id: str, document_id: str | None = None) -> str:
    """
    The console page of a knowledge base's documents, or of one document.

    :param console: the console's base URL (``hook.settings.console_url``), e.g. ``https://cloud.dify.ai``.
    :param dataset_id: the knowledge base.
    :param document_id: the document, if the link should open it.
    """
    base = f"{console.rstrip('/')}/datasets/{dataset_id}/documents"
    return f"{base}/{document_id}" if document_id else base


class DifyConsoleLink(BaseOperatorLink):
    """
    Opens, in the Dify console, the knowledge base or document that the task worked on.

    The URL comes from the connection's ``console_url`` extra, or is derived from the API host. The link is
    empty until the task has resolved its knowledge base (and after a knowledge base was deleted).
    """

    name = "Dify"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """The console URL the task pushed to XCom, or ``""`` when it pushed none."""
        from airflow.providers.common.compat.sdk import XCom

        value = XCom.get_value(ti_key=ti_key, key=CONSOLE_URL_XCOM_KEY)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
        return ""
