"""Extractive summarization: sentence splitting, ROUGE against hand counts, PageRank, budgets, saving."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from algorithms import HyperparameterError, NotFittedError
from algorithms.summarization import (
    Summarization,
    pagerank,
    rouge_l,
    rouge_n,
    rouge_scores,
    split_sentences,
    tokenize,
)
from tests.algorithms.recorder import Recorder

CORPUS = [
    "Solar panels convert sunlight into electricity. Solar power is clean and renewable. "
    "Many homes now install solar panels on their roofs. The weather was nice on Tuesday. "
    "Electricity from solar panels lowers power bills.",
    "The river flooded the valley after heavy rain. Farmers lost crops in the flooded valley. "
    "Heavy rain fell for three days. A local band played music downtown. "
    "The valley recovers slowly after the river flood.",
    "Cats sleep for most of the day. Dogs need daily walks. Cats and dogs are popular pets. "
    "Pets need food, water and care every day.",
]
REFERENCES = [
    "Solar panels turn sunlight into clean electricity.",
    "Heavy rain flooded the valley and farmers lost crops.",
    "Cats and dogs are popular pets that need care.",
]



# -- sentence splitting and tokens ----------------------------------------------------------------


def test_it_splits_sentences_and_keeps_abbreviations_decimals_and_initials():
    text = (
        "Dr. Smith met J. R. Tolkien in the U.S. in 1950. Was pi 3.14 then? Yes! "
        "See e.g. the notes, etc. for more.\n\nA new paragraph without a final period"
    )
    assert split_sentences(text) == [
        "Dr. Smith met J. R. Tolkien in the U.S. in 1950.",
        "Was pi 3.14 then?",
        "Yes!",
        "See e.g. the notes, etc. for more.",
        "A new paragraph without a final period",
    ]


def test_it_does_not_split_before_a_lower_case_word_and_handles_quotes():
    assert split_sentences('He said "stop." Then he left. it continued.') == [
        'He said "stop."',
        "Then he left. it continued.",
    ]
    assert split_sentences("") == []
    assert split_sentences("  \n\n  ") == []


def test_it_tokenizes_lower_case_words_with_inner_apostrophes():
    assert tokenize("Don't STOP: state-of-the-art, x_y 42!") == [
        "don't",
        "stop",
        "state",
        "of",
        "the",
        "art",
        "x",
        "y",
        "42",
    ]


# -- ROUGE -----------------------------------------------------------------------------------------


def test_it_computes_rouge_n_and_l_as_hand_counted():
    cand, ref = "the cat sat on the mat", "the cat was on the mat"
    # 5 of 6 unigrams overlap each way; 3 of 5 bigrams; the LCS "the cat on the mat" has 5 words.
    assert rouge_n(cand, ref, 1) == pytest.approx(5 / 6)
    assert rouge_n(cand, ref, 2) == pytest.approx(3 / 5)
    assert rouge_l(cand, ref) == pytest.approx(5 / 6)
    # Clipped counts: "the the the" has only 2 "the" to match in the reference.
    precision, recall = 2 / 3, 2 / 6
    assert rouge_n("the the the", ref, 1) == pytest.approx(2 * precision * recall / (precision + recall))
    assert rouge_n("", ref) == 0.0
    assert rouge_l("a b c", "d e f") == 0.0


def lcs_reference(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, z in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == z else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def test_it_matches_a_plain_dynamic_programming_lcs():
    rng = np.random.default_rng(0)
    words = ["a", "b", "c", "d", "e"]
    for _ in range(50):
        a = list(rng.choice(words, rng.integers(1, 15)))
        b = list(rng.choice(words, rng.integers(1, 15)))
        expected = lcs_reference(a, b)
        f1 = 2 * expected / (len(a) + len(b)) if expected else 0.0
        assert rouge_l(" ".join(a), " ".join(b)) == pytest.approx(f1)


def test_it_averages_rouge_over_documents_and_checks_lengths():
    scores = rouge_scores(["a b", "c d"], ["a b", "x y"])
    assert scores == {"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5}
    with pytest.raises(ValueError, match="2 summaries but 1 references"):
        rouge_scores(["a", "b"], ["a"])


# -- PageRank --------------------------------------------------------------------------------------


def test_it_matches_the_closed_form_pagerank():
    rng = np.random.default_rng(1)
    weights = rng.random((6, 6))
    np.fill_diagonal(weights, 0)
    weights[2] = 0  # a node without out-links jumps uniformly
    scores, iterations = pagerank(weights, 0.85, 1e-12, 1000)
    n = 6
    transition = np.where(
        weights.sum(1, keepdims=True) > 0, weights / np.maximum(weights.sum(1, keepdims=True), 1e-300), 1 / n
    )
    google = 0.85 * transition + 0.15 / n
    values, vectors = np.linalg.eig(google.T)
    stationary = np.real(vectors[:, np.argmax(np.real(values))])
    np.testing.assert_allclose(scores, stationary / stationary.sum(), atol=1e-9)
    assert iterations < 1000
    assert scores.sum() == pytest.approx(1.0)


def test_it_personalizes_pagerank_toward_early_sentences():
    weights = np.ones((4, 4)) - np.eye(4)
    uniform, _ = pagerank(weights, 0.85, 1e-12, 1000)
    biased, _ = pagerank(weights, 0.85, 1e-12, 1000, teleport=np.array([1.0, 0.5, 0.25, 0.125]))
    np.testing.assert_allclose(uniform, 0.25)
    assert np.all(np.diff(biased) < 0)


# -- the estimator ---------------------------------------------------------------------------------


def test_it_picks_central_sentences_in_original_order():
    model = Summarization(method="textrank", max_sentences=2).fit(CORPUS)
    summaries = model.predict(CORPUS)
    assert len(summaries) == 3
    # The off-topic sentences are never chosen; the chosen ones keep their order in the document.
    assert "weather" not in summaries[0] and "band" not in summaries[1]
    for summary, document in zip(summaries, CORPUS, strict=True):
        chosen = split_sentences(summary)
        assert len(chosen) == 2
        positions = [document.index(sentence) for sentence in chosen]
        assert positions == sorted(positions)
    assert model.task_ == "summarization"


def test_it_learns_vocabulary_and_smoothed_idf_over_documents():
    model = Summarization().fit(["apple banana.", "apple cherry.", "the apple"])
    assert model.vocabulary_.tolist() == ["apple", "banana", "cherry"]  # "the" is a stop word
    np.testing.assert_allclose(model.idf_, [math.log(4 / 4) + 1, math.log(4 / 2) + 1, math.log(4 / 2) + 1])
    assert model.unseen_idf_ == pytest.approx(math.log(4) + 1)
    assert model.n_documents_ == 3
    small = Summarization(min_df=2).fit(["apple banana.", "apple cherry.", "the apple"])
    assert small.vocabulary_.tolist() == ["apple"]
    capped = Summarization(max_vocabulary=1).fit(["apple banana.", "apple cherry.", "the apple"])
    assert capped.vocabulary_.tolist() == ["apple"]


@pytest.mark.parametrize("method", ["textrank", "lexrank"])
def test_it_ranks_with_both_methods(method):
    model = Summarization(method=method, max_sentences=1).fit(CORPUS)
    sentences, scores = model.rank_sentences(CORPUS[0])
    assert len(sentences) == 5 and scores.sum() == pytest.approx(1.0)
    # The unrelated sentence has no edge and gets only the teleport share.
    assert int(np.argmin(scores)) == 3


def test_it_scores_pacsum_as_directed_degree_centrality():
    model = Summarization(method="pacsum", threshold=0.0, backward_weight=-2.0).fit(CORPUS)
    sentences, scores = model.rank_sentences(CORPUS[1])
    vectors = model._sentence_vectors(sentences, model._validated_params())
    similarity = vectors @ vectors.T
    expected = [-2.0 * similarity[i, :i].sum() + similarity[i, i + 1 :].sum() for i in range(len(sentences))]
    np.testing.assert_allclose(scores, expected)
    # The opening sentence, echoed by what follows, leads; the closing restatement is last.
    assert int(np.argmax(scores)) == 0 and int(np.argmin(scores)) == 4
    assert model.predict(CORPUS[1:2]) == [" ".join(sentences[i] for i in sorted(np.argsort(-scores)[:3]))]


def test_it_respects_sentence_word_and_ratio_budgets():
    model = Summarization(max_sentences=0, ratio=0.4).fit(CORPUS)
    assert [len(split_sentences(s)) for s in model.predict(CORPUS)] == [2, 2, 2]
    words = Summarization(max_sentences=0, max_words=12).fit(CORPUS)
    for summary in words.predict(CORPUS):
        assert 0 < len(summary.split()) <= 12
    # The best sentence is kept even when it alone exceeds the word budget.
    tiny = Summarization(max_words=1).fit(CORPUS)
    assert all(len(split_sentences(s)) == 1 for s in tiny.predict(CORPUS))
    everything = Summarization(max_sentences=50).fit(CORPUS)
    assert everything.predict(CORPUS[2:]) == [" ".join(split_sentences(CORPUS[2]))]


def test_it_handles_empty_and_one_sentence_documents():
    model = Summarization().fit(CORPUS)
    assert model.predict(["", "Only one sentence here.", "no period at all"]) == [
        "",
        "Only one sentence here.",
        "no period at all",
    ]
    assert model.predict([]) == []


def test_it_reports_rouge_through_the_callback_and_evaluate():
    recorder = Recorder()
    model = Summarization(max_sentences=1).fit(
        CORPUS[:2], REFERENCES[:2], X_val=CORPUS[2:], y_val=REFERENCES[2:], callback=recorder
    )
    assert [step for step, _ in recorder.calls] == [1]
    metrics = recorder.calls[0][1]
    assert set(metrics) == {f"{c}:{m}" for c in ("train", "validation") for m in ("rouge1", "rouge2", "rougeL")}
    assert set(metrics) <= {metric.name for metric in Summarization.metrics}
    expected = rouge_scores(model.predict(CORPUS[2:]), REFERENCES[2:])
    assert model.evaluate(CORPUS[2:], REFERENCES[2:]) == {f"validation:{k}": v for k, v in expected.items()}
    assert 0 < metrics["train:rouge1"] <= 1
    unlabeled = Recorder()
    Summarization().fit(CORPUS, callback=unlabeled)
    assert unlabeled.calls == [(1, {})]


def test_it_round_trips_through_saved_files(tmp_path: Path):
    model = Summarization(method="lexrank", max_sentences=2, sublinear_tf=True).fit(CORPUS)
    model.save(tmp_path / "model")
    loaded = Summarization.load(tmp_path / "model")
    unseen = ["Wind turbines make electricity. Wind is renewable power. Birds fly south. Turbines need wind."]
    assert loaded.predict(CORPUS + unseen) == model.predict(CORPUS + unseen)
    assert loaded.vocabulary_.tolist() == model.vocabulary_.tolist()
    np.testing.assert_array_equal(loaded.idf_, model.idf_)
    assert loaded.evaluate(CORPUS, REFERENCES) == model.evaluate(CORPUS, REFERENCES)


def test_it_saves_a_model_fitted_on_stop_words_only(tmp_path: Path):
    model = Summarization().fit(["The and of.", "It is."])
    assert model.vocabulary_.size == 0
    loaded = Summarization.load(model.save(tmp_path / "m"))
    assert loaded.predict(["A cat. The dog."]) == model.predict(["A cat. The dog."])


def test_it_rejects_bad_inputs_with_clear_messages():
    with pytest.raises(ValueError, match="not a single string"):
        Summarization().fit("one document")
    with pytest.raises(ValueError, match="no documents"):
        Summarization().fit([])
    with pytest.raises(ValueError, match=r"X\[1\] is int, not a string"):
        Summarization().fit(["a.", 3])
    with pytest.raises(ValueError, match="y has 1 references but X has 3 documents"):
        Summarization().fit(CORPUS, ["x"])
    with pytest.raises(ValueError, match="given together"):
        Summarization().fit(CORPUS, X_val=CORPUS)
    with pytest.raises(NotFittedError):
        Summarization().predict(CORPUS)
    model = Summarization().fit(CORPUS)
    with pytest.raises(ValueError, match="y is required"):
        model.evaluate(CORPUS)
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(CORPUS, REFERENCES, channel="test")


def test_it_validates_hyperparameters():
    with pytest.raises(HyperparameterError, match=r"damping must be between 0\.0 and 0\.99"):
        Summarization(damping=1.5).fit(CORPUS)
    with pytest.raises(HyperparameterError, match="method must be one of 'textrank', 'lexrank'"):
        Summarization(method="lsa").fit(CORPUS)
    with pytest.raises(HyperparameterError, match="at least one of max_sentences, max_words or ratio"):
        Summarization(max_sentences=0).fit(CORPUS)
    assert Summarization.describe()["input"] == "text"
    assert Summarization.describe()["target"] == "optional"


def test_it_accepts_a_numpy_array_of_strings():
    model = Summarization(max_sentences=1).fit(np.array(CORPUS))
    assert model.predict(np.array(CORPUS)) == model.predict(CORPUS)
