"""The emulator's keyword index and splitter follow Dify's: jieba TF-IDF keywords, character-counted chunks."""
# ruff: noqa: RUF001 - Chinese text uses full-width punctuation

from __future__ import annotations

import itertools
from typing import Any

from airflow_provider_dify.testing.text import extract_keywords, query_keywords, split_text

KEYWORD = {"search_method": "keyword_search", "reranking_enable": False, "top_k": 5, "score_threshold_enabled": False}


def test_keywords_are_jieba_s_with_digits_kept_and_ties_in_order_of_appearance() -> None:
    keywords = extract_keywords("Grinder G-887 grinds at 4.1 bar, serial 0001, the model of the year")
    assert keywords[:4] == ["Grinder", "887", "grinds", "4.1"]  # one occurrence each: first seen first
    assert "0001" in keywords and "the" not in keywords and "of" not in keywords
    assert "G" not in keywords  # jieba keeps no word shorter than 2 characters
    assert len(extract_keywords(" ".join(f"word{n}" for n in range(30)))) == 10


def test_frequent_words_win_and_chinese_is_segmented() -> None:
    keywords = extract_keywords("咖啡机运往欧盟需要七天。我们的咖啡机保修两年，咖啡机支持退货。")
    assert keywords[0] == "咖啡机" and "欧盟" in keywords and "保修" in keywords
    assert "我们" not in keywords  # a stop word


def test_compound_keywords_add_their_parts() -> None:
    assert {"4.15", "15"} <= set(extract_keywords("pressure 4.15 bar"))
    assert "4" not in extract_keywords("pressure 4.15 bar")  # a single digit is a stop word there
    assert query_keywords("key facts about EM-1037") == ["key", "facts", "EM", "1037"]


def test_keyword_number_is_per_dataset(emu: Any, client: Any) -> None:
    few = emu.create_dataset("few keywords", keyword_number=3)["id"]
    default = emu.create_dataset("default keywords")["id"]
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
    for dataset_id, expected in ((few, 3), (default, 10)):
        document = emu.create_document(dataset_id, "doc", "")
        response = client.post(
            f"/datasets/{dataset_id}/documents/{document['id']}/segments", json={"segments": [{"content": text}]}
        )
        assert len(response.json()["data"][0]["keywords"]) == expected


def test_query_matching_counts_keywords_case_sensitively(emu: Any, client: Any) -> None:
    dataset_id = emu.create_dataset("matching")["id"]
    document = emu.create_document(dataset_id, "doc", "")
    chunks = ["Espresso machine EM-1037 with steam wand", "Espresso cups, set of six", "Tea kettle KT-2001"]
    client.post(
        f"/datasets/{dataset_id}/documents/{document['id']}/segments",
        json={"segments": [{"content": text} for text in chunks]},
    )

    def found(query: str) -> list[str]:
        response = client.post(f"/datasets/{dataset_id}/retrieve", json={"query": query, "retrieval_model": KEYWORD})
        return [record["segment"]["content"] for record in response.json()["records"]]

    assert found("Espresso EM-1037")[0] == chunks[0]  # two keywords beat one
    assert set(found("Espresso")) == {chunks[0], chunks[1]}
    assert found("espresso") == []  # Dify's keyword table is case-sensitive


def test_automatic_chunks_count_characters_with_overlap() -> None:
    sentences = [f"Sentence number {n} says something about coffee machines and grinders." for n in range(40)]
    text = " ".join(sentences)
    chunks = [chunk for chunk, _ in split_text(text, "automatic", None)]
    assert all(len(chunk) <= 500 for chunk in chunks)
    # 7 sentences of 70 characters a chunk; none carried over (a sentence is longer than the 50 of overlap).
    assert len(chunks) == 6 and chunks[1].startswith("Sentence number 7 ")
    words = " ".join(f"word{n:03d}" for n in range(200))  # no sentence ends: split at spaces
    pieces = [chunk for chunk, _ in split_text(words, "automatic", None)]
    assert all(len(piece) <= 500 for piece in pieces) and len(pieces) == 4
    assert all(set(a.split()[-6:]) == set(b.split()[:6]) for a, b in itertools.pairwise(pieces))
    short = "Dify is an open-source platform.\n\nThe knowledge base splits documents."
    assert split_text(short, "automatic", None) == [(short, [])]  # one chunk, paragraphs kept inside


def test_custom_rules_cut_at_the_separator_then_by_length() -> None:
    rules = {"pre_processing_rules": [], "segmentation": {"separator": "###", "max_tokens": 100, "chunk_overlap": 0}}
    text = "first part###" + "x" * 30 + ". " + "y" * 90 + "###  - third part"
    chunks = [chunk for chunk, _ in split_text(text, "custom", rules)]
    assert chunks[0] == "first part" and chunks[-1] == "- third part"  # stripped; "-" is not a leading symbol
    assert all(len(chunk) <= 100 for chunk in chunks) and len(chunks) == 4
