"""Knowledge base tags and their bindings."""

from __future__ import annotations

from airflow_provider_dify.testing.errors import invalid_param, not_found
from airflow_provider_dify.testing.models import (
    Tag,
)
from airflow_provider_dify.testing.state.core import StateCore, new_id


class TagStore(StateCore):
    """Knowledge base tags and their bindings: a part of :class:`~airflow_provider_dify.testing.state.EmulatorState`."""

    def get_tag(self, tag_id: str) -> Tag:
        """A tag, or 404 "Tag not found"."""
        tag = self.tags.get(str(tag_id))
        if tag is None:
            raise not_found("Tag not found")
        return tag

    def create_tag(self, name: str, now: float) -> Tag:
        """Create a knowledge tag (names unique)."""
        if any(t.name == name for t in self.tags.values()):
            raise invalid_param("Tag name already exists")
        tag = Tag(new_id(), name, now)
        self.tags[tag.id] = tag
        self.tag_bindings[tag.id] = set()
        return tag

    def rename_tag(self, tag_id: str, name: str) -> Tag:
        """Rename a tag."""
        tag = self.get_tag(tag_id)
        if any(t.name == name and t.id != tag.id for t in self.tags.values()):
            raise invalid_param("Tag name already exists")
        tag.name = name
        return tag

    def delete_tag(self, tag_id: str) -> None:
        """Delete a tag (datasets are kept)."""
        tag = self.get_tag(tag_id)
        del self.tags[tag.id]
        self.tag_bindings.pop(tag.id, None)

    def bind_tags(self, tag_ids: list[str], target_id: str, bind: bool) -> None:
        """Bind or unbind tags to a dataset (unknown tags are ignored)."""
        if str(target_id) not in self.datasets:
            raise not_found("Dataset not found.")
        for tag_id in tag_ids:
            bound = self.tag_bindings.get(str(tag_id))
            if bound is None:
                continue
            if bind:
                bound.add(str(target_id))
            else:
                bound.discard(str(target_id))
