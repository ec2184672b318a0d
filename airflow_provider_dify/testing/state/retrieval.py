"""Retrieval: metadata filtering conditions and keyword or embedding search over the chunks."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from airflow_provider_dify.testing.errors import invalid_param
from airflow_provider_dify.testing.models import (
    BUILT_IN_FIELDS,
    Dataset,
    Document,
    Segment,
)
from airflow_provider_dify.testing.state.core import NO_EMBEDDING_MODEL, StateCore
from airflow_provider_dify.testing.text import (
    query_keywords,
    words,
)
from airflow_provider_dify.testing.views import builtin_values


class Retrieval(StateCore):
    """Retrieval: a part of :class:`~airflow_provider_dify.testing.state.EmulatorState`."""

    def _doc_field_value(self, ds: Dataset, doc: Document, name: str) -> Any:
        for field_id, value in doc.metadata_values.items():
            meta = ds.metadata.get(field_id)
            if meta is not None and meta.name == name:
                return value
        if name in dict(BUILT_IN_FIELDS) and (ds.built_in_field_enabled or doc.builtin_values):
            return builtin_values(doc).get(name)
        return None

    def _matches(self, ds: Dataset, doc: Document, conditions: dict[str, Any] | None) -> bool:
        if not conditions or not conditions.get("conditions"):
            return True
        results = [self._condition(ds, doc, cond) for cond in conditions["conditions"] if isinstance(cond, dict)]
        if (conditions.get("logical_operator") or "and").lower() == "or":
            return any(results)
        return all(results)

    def _condition(self, ds: Dataset, doc: Document, cond: dict[str, Any]) -> bool:
        actual = self._doc_field_value(ds, doc, str(cond.get("name", "")))
        op = str(cond.get("comparison_operator", "")).strip().lower()
        expected = cond.get("value")
        if op == "empty":
            return actual is None or actual == ""
        if op == "not empty":
            return actual is not None and actual != ""
        if actual is None:
            return False
        if op in ("in", "not in"):
            options = expected if isinstance(expected, list) else str(expected or "").split(",")
            found = str(actual) in {str(o).strip() for o in options}
            return found if op == "in" else not found
        if op in ("=", "≠", "!=", ">", "<", "≥", ">=", "≤", "<=", "before", "after"):
            left, right = _number(actual), _number(expected)
            if left is None or right is None:
                return False
            return {
                "=": left == right,
                "≠": left != right,
                "!=": left != right,
                ">": left > right,
                "after": left > right,
                "<": left < right,
                "before": left < right,
                "≥": left >= right,
                ">=": left >= right,
                "≤": left <= right,
                "<=": left <= right,
            }[op]
        text, value = str(actual), "" if expected is None else str(expected)
        if op == "is":
            return text == value or (_number(actual) is not None and _number(actual) == _number(expected))
        if op == "is not":
            return not (text == value or (_number(actual) is not None and _number(actual) == _number(expected)))
        if op == "contains":
            return value in text
        if op == "not contains":
            return value not in text
        if op == "start with":
            return text.startswith(value)
        if op == "end with":
            return text.endswith(value)
        return False

    def retrieve(
        self, ds: Dataset, query: str, retrieval_model: dict[str, Any] | None
    ) -> list[tuple[Segment, Document, float]]:
        """Search the dataset; return ``(chunk, document, score)`` best first."""
        embedding = self.config.embedding_available
        if retrieval_model is None:
            if ds.indexing_technique == "economy" and not embedding:
                raise invalid_param(NO_EMBEDDING_MODEL)
            settings = dict(ds.retrieval_model)
        else:
            settings = retrieval_model
        method = settings.get("search_method") or "semantic_search"
        if method != "keyword_search" and not embedding:
            raise invalid_param(NO_EMBEDDING_MODEL)
        if ds.indexing_technique == "economy":
            method = "keyword_search"
        top_k = int(settings.get("top_k") or 2)
        conditions = settings.get("metadata_filtering_conditions")
        docs = [d for d in ds.documents.values() if d.available and self._matches(ds, d, conditions)]
        hits: list[tuple[Segment, Document, float]] = []
        if method == "keyword_search":
            sensitive = self.config.keyword_case_sensitive
            wanted = set(query_keywords(query))
            if not sensitive:
                wanted = {w.lower() for w in wanted}
            ranked: list[tuple[int, str, Segment, Document]] = []
            for doc in docs:
                for seg in doc.segments.values():
                    if not seg.enabled or seg.status != "completed":
                        continue
                    keys = seg.keywords if sensitive else [k.lower() for k in seg.keywords]
                    count = len(wanted.intersection(keys))
                    if count:
                        ranked.append((-count, seg.index_node_hash, seg, doc))
            # Dify orders chunks with as many matching keywords by the iteration order of its keyword table's
            # sets: arbitrary, but the same for the same contents. The content hash models that (and does not
            # depend on the order in which chunks were written).
            ranked.sort(key=lambda item: (item[0], item[1]))
            hits = [(seg, doc, 0.0) for _, _, seg, doc in ranked[:top_k]]
        else:
            wanted_words = words(query)
            scored: list[tuple[float, int, Segment, Document]] = []
            order = 0
            for doc in docs:
                for seg in doc.segments.values():
                    if not seg.enabled or seg.status != "completed" or not wanted_words:
                        continue
                    overlap = len(wanted_words & words(seg.content + " " + " ".join(seg.keywords)))
                    if overlap:
                        score = round(overlap / math.sqrt(len(wanted_words) * max(1, len(words(seg.content)))), 6)
                        scored.append((score, order, seg, doc))
                        order += 1
            scored.sort(key=lambda item: (-item[0], item[1]))
            threshold = settings.get("score_threshold") if settings.get("score_threshold_enabled") else None
            hits = [
                (seg, doc, min(1.0, score)) for score, _, seg, doc in scored if threshold is None or score >= threshold
            ]
            hits = hits[:top_k]
        for seg, _doc, _score in hits:
            seg.hit_count += 1
        return hits


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
