"""text-classification: planted topics, word order through n-grams, a per-example reference, I/O."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from algorithms import HyperparameterError
from algorithms.metrics import f1_score
from algorithms.text import encode_corpus, ngram_hashes, scatter_add, tokenize
from algorithms.text_classification import TextClassification
from tests.algorithms.recorder import Recorder

FRUIT = ["apple", "banana", "cherry", "grape", "melon", "peach", "plum"]
VEHICLE = ["car", "truck", "bus", "train", "plane", "boat", "bike"]
FILLER = ["the", "a", "is", "of"]


def topics(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = [" ".join(rng.choice((FRUIT, VEHICLE)[label] + FILLER, 6)) for label in labels]
    return texts, np.where(labels == 0, "fruit", "vehicle")


def word_order(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Both classes use the same words; only the order of one pair tells them apart."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER + VEHICLE, 4))
        pair = ["red", "apple"] if label else ["apple", "red"]
        cut = int(rng.integers(0, 5))
        texts.append(" ".join(words[:cut] + pair + words[cut:]))
    return texts, labels



def test_it_tokenizes_unicode_words_in_lower_case() -> None:
    assert tokenize("Café NAÏVE, don't-stop 42!") == ["café", "naïve", "don", "t", "stop", "42"]
    assert tokenize("  ...  ") == []


def test_it_hashes_ngrams_inside_documents_only() -> None:
    corpus = encode_corpus([["a", "b", "c"], ["d"], ["e", "f"]], {})
    hashes, docs = ngram_hashes(corpus, 2)
    assert docs.tolist() == [0, 0, 2]
    # Same words, same hash, wherever they occur: stable across runs (crc32, not hash()).
    again, _ = ngram_hashes(encode_corpus([["x", "a", "b"]], {}), 2)
    assert again[1] == hashes[0]
    assert ngram_hashes(corpus, 4)[0].size == 0


def test_it_scatters_gradients_like_add_at() -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 7, 50)
    values = rng.standard_normal((50, 3)).astype(np.float32)
    expected = np.ones((7, 3), dtype=np.float32)
    np.add.at(expected, rows, values)
    target = np.ones((7, 3), dtype=np.float32)
    scatter_add(target, rows, values)
    np.testing.assert_allclose(target, expected, rtol=1e-5)
    scatter_add(target, rows[:0], values[:0])
    np.testing.assert_allclose(target, expected, rtol=1e-5)


def test_it_learns_planted_topics_with_probabilities() -> None:
    texts, labels = topics(600)
    test_texts, test_labels = topics(200, seed=1)
    model = TextClassification(epochs=5, vector_dim=16, buckets=1000).fit(texts, labels)
    assert model.classes_.tolist() == ["fruit", "vehicle"]
    assert model.task_ == "text_classification"
    assert model.score(test_texts, test_labels) == 1.0
    proba = model.predict_proba(test_texts)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(model.classes_[proba.argmax(axis=1)], model.predict(test_texts))
    assert model.bucket_ids_.max() < 1000


def test_it_uses_word_ngrams_for_word_order() -> None:
    texts, labels = word_order(800)
    test_texts, test_labels = word_order(300, seed=1)
    unigrams = TextClassification(epochs=10, vector_dim=16, word_ngrams=1).fit(texts, labels)
    bigrams = TextClassification(epochs=10, vector_dim=16, word_ngrams=2).fit(texts, labels)
    assert unigrams.bucket_ids_.size == 0
    assert unigrams.score(test_texts, test_labels) < 0.7
    assert bigrams.score(test_texts, test_labels) == 1.0


def test_it_matches_a_per_example_sgd_reference_with_batch_size_one() -> None:
    texts, labels = topics(60)
    params = {"epochs": 2, "vector_dim": 8, "word_ngrams": 2, "buckets": 97, "learning_rate": 0.3, "random_state": 3}
    model = TextClassification(batch_size=1, **params).fit(texts, labels)

    # Plain per-example fastText update, on the same features, initialisation and order.
    indptr, columns = model._features(model._encode(texts))
    target = np.unique(labels, return_inverse=True)[1]
    rng = np.random.default_rng(params["random_state"])
    dim = params["vector_dim"]
    E = rng.uniform(-1 / dim, 1 / dim, size=model.input_vectors_.shape).astype(np.float32).astype(np.float64)
    W = np.zeros(model.output_vectors_.shape)
    words = np.array([len(tokenize(t)) for t in texts], dtype=float)
    total, seen = words.sum() * params["epochs"], 0.0
    for _ in range(params["epochs"]):
        for doc in rng.permutation(len(texts)):
            lr = params["learning_rate"] * (1 - seen / total)
            seen += words[doc]
            cols = columns[indptr[doc] : indptr[doc + 1]]
            hidden = E[cols].mean(axis=0)
            logits = W @ hidden
            p = np.exp(logits - logits.max())
            p /= p.sum()
            alpha = -lr * p
            alpha[target[doc]] += lr
            grad = alpha @ W
            W += np.outer(alpha, hidden)
            for c in cols:
                E[c] += grad / cols.size
    np.testing.assert_allclose(model.output_vectors_, W, atol=2e-5)
    np.testing.assert_allclose(model.input_vectors_, E, atol=2e-5)


def test_it_drops_rare_words_and_scores_unknown_text_uniformly() -> None:
    texts, labels = topics(200)
    texts = [*texts, "zebra apple"]
    labels = np.append(labels, "fruit")
    model = TextClassification(epochs=2, vector_dim=8, min_count=2, word_ngrams=1).fit(texts, labels)
    assert "zebra" not in model.vocabulary_.tolist()
    assert "apple" in model.vocabulary_.tolist()
    np.testing.assert_allclose(model.predict_proba(["", "zebra!!", "Unseen Words"]), 0.5)


def test_it_accepts_integer_labels_and_many_classes() -> None:
    rng = np.random.default_rng(0)
    vocab = [[f"w{c}_{i}" for i in range(5)] for c in range(5)]
    labels = rng.integers(0, 5, 500)
    texts = [" ".join(rng.choice(vocab[c], 4)) for c in labels]
    model = TextClassification(epochs=5, vector_dim=10, word_ngrams=1).fit(texts, labels)
    assert model.classes_.tolist() == [0, 1, 2, 3, 4]
    assert model.score(texts, labels) == 1.0


def test_it_reports_metrics_each_epoch_and_stops_on_request() -> None:
    texts, labels = topics(300)
    val_texts, val_labels = topics(100, seed=2)
    recorder = Recorder()
    model = TextClassification(epochs=3, vector_dim=8).fit(
        texts, labels, X_val=val_texts, y_val=val_labels, callback=recorder
    )
    assert [step for step, _ in recorder.calls] == [1, 2, 3]
    declared = {metric.name for metric in TextClassification.metrics} - {"train:f1"}
    for _, metrics in recorder.calls:
        assert set(metrics) == declared
    assert recorder.calls[-1][1]["train:loss"] < recorder.calls[0][1]["train:loss"]
    assert model.stopped_early_ is False and model.n_epochs_ == 3

    stopper = Recorder(stop_at=1)
    stopped = TextClassification(epochs=5, vector_dim=8).fit(texts, labels, callback=stopper)
    assert len(stopper.calls) == 1 and stopped.stopped_early_ and stopped.n_epochs_ == 1
    assert stopped.predict(val_texts).shape == (100,)


def test_it_evaluates_accuracy_macro_f1_and_loss() -> None:
    texts, labels = topics(300)
    model = TextClassification(epochs=1, vector_dim=4, learning_rate=0.01).fit(texts, labels)
    eval_labels = labels.copy()
    eval_labels[:10] = "boat"  # a label never seen in training counts as an error
    result = model.evaluate(texts, eval_labels, channel="train")
    predicted = model.predict(texts)
    assert result["train:accuracy"] == pytest.approx(np.mean(predicted == eval_labels))
    assert result["train:f1"] == pytest.approx(f1_score(eval_labels, predicted, average="macro"))
    assert result["train:loss"] > 0
    with pytest.raises(ValueError, match="channel"):
        model.evaluate(texts, labels, channel="test")


@pytest.mark.parametrize("word_ngrams", [1, 3])
def test_it_round_trips_through_save_and_load(tmp_path: Path, word_ngrams: int) -> None:
    texts, labels = word_order(300)
    model = TextClassification(epochs=2, vector_dim=8, word_ngrams=word_ngrams).fit(texts, labels)
    model.save(tmp_path / "model")
    loaded = TextClassification.load(tmp_path / "model")
    queries = [*word_order(50, seed=5)[0], "", "never seen"]
    np.testing.assert_array_equal(loaded.predict_proba(queries), model.predict_proba(queries))
    np.testing.assert_array_equal(loaded.predict(queries), model.predict(queries))
    assert loaded.vocabulary_.dtype.kind == "U"


def test_it_rejects_a_tampered_saved_model(tmp_path: Path) -> None:
    texts, labels = topics(100)
    model = TextClassification(epochs=1, vector_dim=4).fit(texts, labels)
    model.output_vectors_ = model.output_vectors_[:, :3]
    model.save(tmp_path / "bad")
    with pytest.raises(ValueError, match="input_vectors_"):
        TextClassification.load(tmp_path / "bad")


def test_it_rejects_bad_input_with_clear_messages() -> None:
    model = TextClassification(epochs=1)
    with pytest.raises(ValueError, match="X is required"):
        model.fit(None, ["a"])
    with pytest.raises(ValueError, match="single string"):
        model.fit("one text", ["a"])
    with pytest.raises(ValueError, match=r"X\[1\] is int"):
        model.fit(["a text", 3], ["a", "b"])
    with pytest.raises(ValueError, match="X has no texts"):
        model.fit([], [])
    with pytest.raises(ValueError, match="y has 1 values"):
        model.fit(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="y is required"):
        model.fit(["a", "b"])
    with pytest.raises(ValueError, match="no words"):
        model.fit(["...", "!!"], ["x", "y"])
    with pytest.raises(ValueError, match="together"):
        model.fit(["a b", "c d"], ["x", "y"], X_val=["a"])
    with pytest.raises(HyperparameterError, match="word_ngrams must be between 1 and 3"):
        TextClassification(word_ngrams=4).fit(["a b"], ["x"])
    with pytest.raises(ValueError, match="not fitted"):
        TextClassification().predict(["a"])


def test_it_handles_a_single_class() -> None:
    model = TextClassification(epochs=1, vector_dim=4).fit(["a b", "c d"], ["only", "only"])
    assert model.predict(["x", "a"]).tolist() == ["only", "only"]
    np.testing.assert_allclose(model.predict_proba(["a"]), 1.0)


def test_it_rejects_unsorted_saved_buckets(tmp_path: Path) -> None:
    texts, labels = word_order(100)
    model = TextClassification(epochs=1, vector_dim=4, buckets=50).fit(texts, labels)
    model.bucket_ids_ = model.bucket_ids_[::-1].copy()
    model.save(tmp_path / "bad")
    with pytest.raises(ValueError, match="bucket_ids_"):
        TextClassification.load(tmp_path / "bad")


# -- resuming -----------------------------------------------------------------------------------


def resume_from_disk(model: TextClassification, path: Path, epochs: int) -> TextClassification:
    model.save(path)
    return TextClassification.load(path).set_params(epochs=epochs)


def test_it_resumes_exactly_where_the_callback_stopped_it(tmp_path: Path) -> None:
    texts, labels = word_order(400)
    val_texts, val_labels = word_order(100, seed=1)
    straight, stopped, resumed_calls = Recorder(), Recorder(stop_at=3), Recorder()
    settings = {"epochs": 6, "vector_dim": 8, "buckets": 500}
    reference = TextClassification(**settings).fit(texts, labels, X_val=val_texts, y_val=val_labels, callback=straight)
    model = TextClassification(**settings).fit(texts, labels, X_val=val_texts, y_val=val_labels, callback=stopped)
    resumed = resume_from_disk(model, tmp_path, 6)
    resumed.fit(texts, labels, X_val=val_texts, y_val=val_labels, callback=resumed_calls, resume=True)
    # The total number of epochs did not change, so neither did the learning-rate schedule.
    assert [step for step, _ in resumed_calls.calls] == [4, 5, 6]
    for (_, got), (_, want) in zip(resumed_calls.calls, straight.calls[3:], strict=True):
        np.testing.assert_allclose([got[key] for key in sorted(want)], [want[key] for key in sorted(want)])
    np.testing.assert_allclose(resumed.predict_proba(val_texts), reference.predict_proba(val_texts))
    assert (resumed.n_epochs_, resumed.stopped_early_) == (6, False)


def test_it_resumes_a_shorter_run_with_the_schedule_recomputed_for_the_new_total(tmp_path: Path) -> None:
    texts, labels = word_order(400)
    val_texts, val_labels = word_order(100, seed=1)
    first, resumed_calls = Recorder(), Recorder()
    settings = {"vector_dim": 8, "buckets": 500, "learning_rate": 0.2}
    straight = TextClassification(epochs=6, **settings).fit(texts, labels)
    model = TextClassification(epochs=3, **settings).fit(
        texts, labels, X_val=val_texts, y_val=val_labels, callback=first
    )
    resumed = resume_from_disk(model, tmp_path, 6)
    resumed.fit(texts, labels, X_val=val_texts, y_val=val_labels, callback=resumed_calls, resume=True)
    assert [step for step, _ in resumed_calls.calls] == [4, 5, 6]
    losses = [metrics["train:loss"] for _, metrics in first.calls + resumed_calls.calls]
    assert all(later < earlier for earlier, later in itertools.pairwise(losses)), losses
    assert resumed_calls.calls[-1][1]["validation:loss"] < first.calls[-1][1]["validation:loss"] / 2
    assert resumed.score(val_texts, val_labels) == straight.score(val_texts, val_labels) == 1.0
    np.testing.assert_allclose(resumed.predict_proba(val_texts), straight.predict_proba(val_texts), atol=0.05)


def test_it_refuses_to_resume_on_another_vocabulary_or_classes(tmp_path: Path) -> None:
    from tests.algorithms.test_base import forget_training_state

    texts, labels = word_order(200)
    with pytest.raises(ValueError, match="not fitted; nothing to resume"):
        TextClassification().fit(texts, labels, resume=True)
    model = TextClassification(epochs=1, vector_dim=4).fit(texts, labels)
    with pytest.raises(ValueError, match="another vocabulary"):
        model.fit(topics(200)[0], labels, resume=True)
    with pytest.raises(ValueError, match=r"y has the classes \[0, 2\]"):
        model.fit(texts, labels * 2, resume=True)
    with pytest.raises(ValueError, match="cannot resume: vector_dim differ"):
        model.set_params(vector_dim=5, epochs=2).fit(texts, labels, resume=True)
    # A budget already reached trains nothing.
    calls, vectors = Recorder(), model.input_vectors_.copy()
    assert model.set_params(vector_dim=4, epochs=1).fit(texts, labels, resume=True, callback=calls) is model
    assert calls.calls == []
    np.testing.assert_array_equal(model.input_vectors_, vectors)
    model.save(tmp_path)
    forget_training_state(tmp_path, TextClassification)
    old = TextClassification.load(tmp_path)
    np.testing.assert_array_equal(old.predict(texts), model.predict(texts))
    with pytest.raises(ValueError, match="no saved training state"):
        old.set_params(epochs=3).fit(texts, labels, resume=True)
