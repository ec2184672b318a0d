"""Knowledge bases (datasets): create, list, update, delete, and their counts."""

from __future__ import annotations

from typing import Any

from airflow_provider_dify.testing.errors import ApiError, invalid_param, not_found
from airflow_provider_dify.testing.models import (
    Dataset,
    Tag,
    default_retrieval_model,
)
from airflow_provider_dify.testing.state.core import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_EMBEDDING_PROVIDER,
    NO_EMBEDDING_MODEL,
    StateCore,
    new_id,
)


class DatasetStore(StateCore):
    """Knowledge bases (datasets): a part of :class:`~airflow_provider_dify.testing.state.EmulatorState`."""

    def dataset_counts(self, ds: Dataset) -> tuple[int, int, int]:
        """``(document_count, word_count, available_documents)``, cached until the state changes."""
        cached = self._counts_cache.get(ds.id)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        word_count = 0
        available = 0
        for doc in ds.documents.values():
            word_count += doc.word_count or 0
            available += doc.available
        counts = (len(ds.documents), word_count, available)
        self._counts_cache[ds.id] = (self.version, counts)
        return counts

    def dataset_tags(self, ds: Dataset) -> list[Tag]:
        """Tags bound to a dataset."""
        return [tag for tag_id, tag in self.tags.items() if ds.id in self.tag_bindings.get(tag_id, ())]

    def get_dataset(self, dataset_id: str) -> Dataset:
        """The dataset, or 404 "Dataset not found."."""
        ds = self.datasets.get(dataset_id)
        if ds is None:
            raise not_found("Dataset not found.")
        return ds

    def _check_embedding(self, technique: str | None, message: str = NO_EMBEDDING_MODEL) -> None:
        if technique == "high_quality" and not self.config.embedding_available:
            raise invalid_param(message)

    def create_dataset(self, values: dict[str, Any], now: float) -> Dataset:
        """Create an empty dataset (name unique in the workspace)."""
        name = values["name"]
        if name in self.dataset_names:
            raise ApiError(
                409,
                "dataset_name_duplicate",
                "The dataset name already exists. Please modify your dataset name.",
            )
        if values.get("provider") == "external":
            raise invalid_param("External knowledge bases are not supported by the emulator.")
        technique = values.get("indexing_technique")
        self._check_embedding(technique)
        retrieval = default_retrieval_model()
        if values.get("retrieval_model"):
            retrieval.update({k: v for k, v in values["retrieval_model"].items() if k in retrieval or k == "weights"})
        high_quality = technique == "high_quality"
        ds = Dataset(
            id=new_id(),
            name=name,
            description=values.get("description") or "",
            permission=values.get("permission") or "only_me",
            indexing_technique=technique,
            embedding_model=(values.get("embedding_model") or DEFAULT_EMBEDDING_MODEL) if high_quality else None,
            embedding_model_provider=(values.get("embedding_model_provider") or DEFAULT_EMBEDDING_PROVIDER)
            if high_quality
            else None,
            retrieval_model=retrieval,
            created_by=self.account_id,
            created_at=now,
            updated_at=now,
            summary_index_setting=values.get("summary_index_setting"),
        )
        self.datasets[ds.id] = ds
        self.dataset_names[name] = ds.id
        return ds

    def list_datasets(self, keyword: str | None, tag_ids: list[str], include_all: bool) -> list[Dataset]:
        """Datasets, newest first, filtered by name keyword and tags (any of them)."""
        result = list(reversed(self.datasets.values()))
        if keyword:
            needle = keyword.lower()
            result = [ds for ds in result if needle in ds.name.lower()]
        if tag_ids:
            targets: set[str] = set()
            for tag_id in tag_ids:
                targets |= self.tag_bindings.get(tag_id, set())
            result = [ds for ds in result if ds.id in targets]
        return result

    def update_dataset(self, ds: Dataset, values: dict[str, Any], present: set[str], now: float) -> Dataset:
        """Change the keys sent in a PATCH."""
        if "name" in present and values.get("name") is not None and values["name"] != ds.name:
            if values["name"] in self.dataset_names:
                raise ApiError(
                    409,
                    "dataset_name_duplicate",
                    "The dataset name already exists. Please modify your dataset name.",
                )
            del self.dataset_names[ds.name]
            ds.name = values["name"]
            self.dataset_names[ds.name] = ds.id
        if "description" in present and values.get("description") is not None:
            ds.description = values["description"]
        if "permission" in present and values.get("permission"):
            ds.permission = values["permission"]
        if "indexing_technique" in present and values.get("indexing_technique"):
            technique = values["indexing_technique"]
            self._check_embedding(technique)
            ds.indexing_technique = technique
            if technique == "high_quality":
                ds.embedding_model = ds.embedding_model or DEFAULT_EMBEDDING_MODEL
                ds.embedding_model_provider = ds.embedding_model_provider or DEFAULT_EMBEDDING_PROVIDER
        for key in ("embedding_model", "embedding_model_provider"):
            if key in present and values.get(key):
                setattr(ds, key, values[key])
        if "retrieval_model" in present and values.get("retrieval_model"):
            ds.retrieval_model.update(values["retrieval_model"])
        if "partial_member_list" in present and values.get("partial_member_list") is not None:
            ds.partial_member_list = list(values["partial_member_list"])
        ds.updated_at = now
        return ds

    def delete_dataset(self, ds: Dataset) -> None:
        """Delete a dataset with its documents and tag bindings."""
        for doc in ds.documents.values():
            doc.deleted = True
            self.files.pop(doc.upload_file.id, None)
        del self.datasets[ds.id]
        self.dataset_names.pop(ds.name, None)
        for bound in self.tag_bindings.values():
            bound.discard(ds.id)
        self._counts_cache.pop(ds.id, None)
