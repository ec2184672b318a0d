"""Paged lists: the iterators read every item and stop at the end even when ``has_more`` says otherwise."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_dify.hooks.dify import DifyHook
from tests.unit.helpers import BASE_URL, DATASET_ID, DOCUMENT_ID, SEGMENT_ID, success_body

DOCUMENTS_URL = f"{BASE_URL}/datasets/{DATASET_ID}/documents"


def _documents(count: int, start: int = 0) -> list[dict[str, Any]]:
    template = success_body("list_documents")["data"][0]
    return [{**template, "id": f"doc-{index}", "name": f"doc-{index}.txt"} for index in range(start, start + count)]


def _page(items: list[dict[str, Any]], page: int, limit: int, total: Any, has_more: bool) -> dict[str, Any]:
    return {"data": items, "has_more": has_more, "limit": limit, "total": total, "page": page}


def _pages_requested(requests_mock: Any) -> list[int]:
    return [int(parse_qs(urlsplit(request.url).query)["page"][0]) for request in requests_mock.request_history]


def test_reads_every_page(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(5)
    requests_mock.get(
        DOCUMENTS_URL,
        [
            {"json": _page(docs[0:2], 1, 2, 5, True)},
            {"json": _page(docs[2:4], 2, 2, 5, True)},
            {"json": _page(docs[4:5], 3, 2, 5, False)},
        ],
    )
    assert [doc["id"] for doc in hook.iter_documents(DATASET_ID, page_size=2)] == [doc["id"] for doc in docs]
    assert _pages_requested(requests_mock) == [1, 2, 3]
    assert all("limit=2" in request.url for request in requests_mock.request_history)


def test_has_more_on_a_full_last_page_does_not_fetch_more(hook: DifyHook, requests_mock: Any) -> None:
    """Dify sets has_more when the page is full, even when it is the last one: total tells the truth."""
    docs = _documents(4)
    requests_mock.get(
        DOCUMENTS_URL,
        [{"json": _page(docs[0:2], 1, 2, 4, True)}, {"json": _page(docs[2:4], 2, 2, 4, True)}],
    )
    assert len(list(hook.iter_documents(DATASET_ID, page_size=2))) == 4
    assert _pages_requested(requests_mock) == [1, 2]


def test_a_short_page_ends_the_list_whatever_has_more_says(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(3)
    requests_mock.get(
        DOCUMENTS_URL,
        [{"json": _page(docs[0:2], 1, 2, None, True)}, {"json": _page(docs[2:3], 2, 2, None, True)}],
    )
    assert len(list(hook.iter_documents(DATASET_ID, page_size=2))) == 3
    assert _pages_requested(requests_mock) == [1, 2]


def test_has_more_false_on_a_full_page_is_not_trusted_either(hook: DifyHook, requests_mock: Any) -> None:
    """The recorded page of 1 of 3 documents (has_more true) and pages that under-report."""
    first = success_body("list_documents_page_1_of_3")
    assert (first["has_more"], first["limit"], first["total"]) == (True, 1, 3)
    docs = _documents(2, start=1)
    requests_mock.get(
        DOCUMENTS_URL,
        [
            {"json": first},
            {"json": _page(docs[0:1], 2, 1, 3, False)},
            {"json": _page(docs[1:2], 3, 1, 3, False)},
        ],
    )
    names = [doc["id"] for doc in hook.iter_documents(DATASET_ID, page_size=1)]
    assert names == [first["data"][0]["id"], "doc-1", "doc-2"]
    assert _pages_requested(requests_mock) == [1, 2, 3]


def test_total_given_as_a_string(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(2)
    requests_mock.get(
        DOCUMENTS_URL,
        [{"json": _page(docs[0:1], 1, 1, "2", True)}, {"json": _page(docs[1:2], 2, 1, "2", True)}],
    )
    assert len(list(hook.iter_documents(DATASET_ID, page_size=1))) == 2
    assert requests_mock.call_count == 2


def test_an_empty_first_page(hook: DifyHook, requests_mock: Any) -> None:
    requests_mock.get(DOCUMENTS_URL, json=success_body("list_datasets_empty"))
    assert list(hook.iter_documents(DATASET_ID)) == []
    assert requests_mock.call_count == 1


def test_an_empty_page_after_full_ones_ends_the_list(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(2)
    requests_mock.get(
        DOCUMENTS_URL,
        [{"json": _page(docs, 1, 2, None, True)}, {"json": _page([], 2, 2, None, False)}],
    )
    assert len(list(hook.iter_documents(DATASET_ID, page_size=2))) == 2
    assert requests_mock.call_count == 2


def test_the_iterator_is_lazy(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(4)
    requests_mock.get(
        DOCUMENTS_URL,
        [{"json": _page(docs[0:2], 1, 2, 4, True)}, {"json": _page(docs[2:4], 2, 2, 4, True)}],
    )
    iterator = hook.iter_documents(DATASET_ID, page_size=2)
    assert requests_mock.call_count == 0
    next(iterator)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("page_size", [0, 101, 1000])
def test_page_size_beyond_difys_cap_is_refused(hook: DifyHook, requests_mock: Any, page_size: int) -> None:
    with pytest.raises(ValueError, match=r"^limit: "):
        list(hook.iter_documents(DATASET_ID, page_size=page_size))
    with pytest.raises(ValueError, match=r"^limit: "):
        hook.list_documents(DATASET_ID, limit=page_size)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("iterate", "url"),
    [
        (lambda h: h.iter_datasets(page_size=1), f"{BASE_URL}/datasets"),
        (lambda h: h.iter_segments(DATASET_ID, DOCUMENT_ID, page_size=1), f"{DOCUMENTS_URL}/{DOCUMENT_ID}/segments"),
        (
            lambda h: h.iter_child_chunks(DATASET_ID, DOCUMENT_ID, SEGMENT_ID, page_size=1),
            f"{DOCUMENTS_URL}/{DOCUMENT_ID}/segments/{SEGMENT_ID}/child_chunks",
        ),
    ],
    ids=["datasets", "segments", "child chunks"],
)
def test_every_iterator_pages_the_same_way(hook: DifyHook, requests_mock: Any, iterate: Any, url: str) -> None:
    requests_mock.get(
        url,
        [
            {"json": _page([{"id": "a"}], 1, 1, 2, True)},
            {"json": _page([{"id": "b"}], 2, 1, 2, True)},
            {"json": _page([{"id": "never"}], 3, 1, 2, False)},
        ],
    )
    assert [item["id"] for item in iterate(hook)] == ["a", "b"]
    assert _pages_requested(requests_mock) == [1, 2]


# -- lists that move or do not page ------------------------------------------------------------------------------


def test_an_item_a_create_shifted_onto_the_next_page_is_yielded_once(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(4)
    new = _documents(1, start=9)
    requests_mock.get(
        DOCUMENTS_URL,
        [
            {"json": _page(docs[0:2], 1, 2, 4, True)},
            {"json": _page(docs[1:3], 2, 2, 5, True)},  # one created meanwhile: doc-1 comes again
            {"json": _page(docs[3:4], 3, 2, 5, False)},
            {"json": _page(new + docs[0:1], 1, 2, 5, True)},  # the re-read a moved total asks for
            {"json": _page(docs[1:3], 2, 2, 5, True)},
            {"json": _page(docs[3:4], 3, 2, 5, False)},
        ],
    )
    ids = [doc["id"] for doc in hook.iter_documents(DATASET_ID, page_size=2)]
    assert ids == ["doc-0", "doc-1", "doc-2", "doc-3", "doc-9"]
    assert _pages_requested(requests_mock) == [1, 2, 3, 1, 2, 3]


def test_an_item_a_delete_shifted_out_of_sight_is_found_by_a_second_pass(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(4)
    requests_mock.get(
        DOCUMENTS_URL,
        [
            {"json": _page(docs[0:2], 1, 2, 4, True)},
            {"json": _page(docs[3:4], 2, 2, 3, False)},  # doc-1 deleted meanwhile: doc-2 moved to page 1
            {"json": _page([docs[0], docs[2]], 1, 2, 3, True)},
            {"json": _page(docs[3:4], 2, 2, 3, False)},
        ],
    )
    ids = [doc["id"] for doc in hook.iter_documents(DATASET_ID, page_size=2)]
    assert ids == ["doc-0", "doc-1", "doc-3", "doc-2"]
    assert _pages_requested(requests_mock) == [1, 2, 1, 2]


def test_an_unchanged_list_is_read_once(hook: DifyHook, requests_mock: Any) -> None:
    docs = _documents(3)
    requests_mock.get(
        DOCUMENTS_URL, [{"json": _page(docs[0:2], 1, 2, 3, True)}, {"json": _page(docs[2:3], 2, 2, 3, False)}]
    )
    assert len(list(hook.iter_documents(DATASET_ID, page_size=2))) == 3
    assert _pages_requested(requests_mock) == [1, 2]


def test_a_page_longer_than_the_limit_holding_everything_is_the_whole_list(
    hook: DifyHook, requests_mock: Any
) -> None:
    docs = _documents(7)
    requests_mock.get(DOCUMENTS_URL, json=_page(docs, 1, 2, 7, True))  # every item on every page
    assert [doc["id"] for doc in hook.iter_documents(DATASET_ID, page_size=2)] == [doc["id"] for doc in docs]
    assert _pages_requested(requests_mock) == [1]


def test_a_page_longer_than_the_limit_but_short_of_the_total_is_a_typed_error(
    hook: DifyHook, requests_mock: Any
) -> None:
    from airflow_provider_dify.exceptions import DifyPaginationError

    requests_mock.get(DOCUMENTS_URL, json=_page(_documents(5), 1, 2, 9, True))
    with pytest.raises(DifyPaginationError, match="does not page") as raised:
        list(hook.iter_documents(DATASET_ID, page_size=2))
    assert raised.value.method == "GET" and raised.value.path == f"/datasets/{DATASET_ID}/documents"
    assert _pages_requested(requests_mock) == [1]


def test_pages_repeating_the_first_one_stop_with_a_typed_error(hook: DifyHook, requests_mock: Any) -> None:
    """A server that honours limit but ignores page answers page 1 every time: never a loop."""
    from airflow_provider_dify.exceptions import DifyPaginationError

    requests_mock.get(DOCUMENTS_URL, json=_page(_documents(2), 1, 2, 6, True))
    with pytest.raises(DifyPaginationError, match="repeats only items"):
        list(hook.iter_documents(DATASET_ID, page_size=2))
    assert _pages_requested(requests_mock) == [1, 2]


def test_pages_repeating_without_a_total_stop_with_a_typed_error(hook: DifyHook, requests_mock: Any) -> None:
    from airflow_provider_dify.exceptions import DifyPaginationError

    requests_mock.get(DOCUMENTS_URL, json=_page(_documents(2), 1, 2, None, True))
    with pytest.raises(DifyPaginationError):
        list(hook.iter_documents(DATASET_ID, page_size=2))
    assert _pages_requested(requests_mock) == [1, 2]


def test_a_list_that_keeps_moving_is_read_at_most_three_times(hook: DifyHook, requests_mock: Any) -> None:
    from airflow_provider_dify.hooks.paging import MAX_PASSES

    answers = [{"json": _page(_documents(1, start=index), 1, 2, 10 + index, False)} for index in range(10)]
    requests_mock.get(DOCUMENTS_URL, answers)
    assert len(list(hook.iter_documents(DATASET_ID, page_size=2))) == MAX_PASSES
    assert _pages_requested(requests_mock) == [1] * MAX_PASSES
