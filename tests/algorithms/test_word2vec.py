"""word2vec: planted co-occurrence groups, windows, noise distribution, callbacks and I/O."""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from algorithms import HyperparameterError
from algorithms.word2vec import Word2Vec
from tests.algorithms.recorder import Recorder

FRUIT = [f"fruit{i}" for i in range(8)]
CARS = [f"car{i}" for i in range(8)]
COMMON = ["the", "and", "of"]


@cache
def corpus(n: int = 1500, seed: int = 0) -> tuple[str, ...]:
    """Each text draws its words from one topic group plus shared function words."""
    rng = np.random.default_rng(seed)
    return tuple(" ".join(rng.choice((FRUIT, CARS)[i % 2] + COMMON, 10)) for i in range(n))



@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_it_puts_words_of_one_topic_next_to_each_other(mode: str) -> None:
    model = Word2Vec(mode=mode, vector_dim=16, epochs=4, min_count=1, sampling_threshold=1e-3).fit(list(corpus()))
    assert model.task_ == "embedding"
    for group in (FRUIT, CARS):
        for word in group[:3]:
            neighbours = [w for w, _ in model.nearest(word, k=5)]
            assert set(neighbours) <= set(group), (word, neighbours)
    fruit, car = model.transform([FRUIT[0], CARS[0]])
    other_fruit = model.transform([FRUIT[1]])[0]

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(fruit, other_fruit) > cosine(fruit, car) + 0.3


def test_it_exposes_vectors_vocabulary_and_nearest() -> None:
    model = Word2Vec(vector_dim=8, epochs=1, min_count=1).fit(list(corpus(300)))
    assert model.vectors_.shape == (model.vocabulary_.size, 8)
    assert model.vectors_.dtype == np.float32
    assert set(model.vocabulary_.tolist()) == set(FRUIT + CARS + COMMON)
    # Most frequent first.
    assert np.all(np.diff(model.word_counts_) <= 0)
    vectors = model.transform(["FRUIT1", "unknown", "car2"])
    np.testing.assert_array_equal(vectors[0], model.vectors_[model.vocabulary_.tolist().index("fruit1")])
    np.testing.assert_array_equal(vectors[1], 0.0)
    everything = model.nearest("the", k=100)
    assert len(everything) == model.vocabulary_.size - 1
    assert "the" not in [w for w, _ in everything]
    similarities = [s for _, s in everything]
    assert similarities == sorted(similarities, reverse=True)
    with pytest.raises(KeyError, match="not in the vocabulary"):
        model.nearest("zebra")


def test_it_keeps_windows_inside_one_text() -> None:
    model = Word2Vec(window_size=2)
    ids = np.array([0, 1, 2, 3, 4])
    docs = np.array([0, 0, 0, 1, 1])
    position, centre, context = model._pairs(ids, docs, np.random.default_rng(0))
    pairs = set(zip(centre.tolist(), context.tolist(), strict=True))
    assert (2, 3) not in pairs and (3, 2) not in pairs
    assert {(3, 4), (4, 3), (0, 1), (1, 0)} <= pairs
    assert np.array_equal(ids[position], centre)


def test_it_draws_noise_words_by_count_to_the_three_quarters() -> None:
    model = Word2Vec()
    model.word_counts_ = np.array([81, 16, 1])
    cdf = model._noise_distribution()
    weights = np.array([27.0, 8.0, 1.0])
    np.testing.assert_allclose(np.diff(np.r_[0.0, cdf]), weights / weights.sum())


def test_it_subsamples_frequent_words() -> None:
    texts = list(corpus(400))
    full = Recorder()
    Word2Vec(vector_dim=8, epochs=1, min_count=1, sampling_threshold=0.0).fit(texts, callback=full)
    assert full.calls[0][1]["train:loss"] > 0
    # With a tiny threshold almost every word is dropped, but training still runs.
    Word2Vec(vector_dim=8, epochs=1, min_count=1, sampling_threshold=1e-6).fit(texts)


def test_it_reports_loss_each_epoch_and_stops_on_request() -> None:
    texts = list(corpus(600))
    recorder = Recorder()
    model = Word2Vec(vector_dim=8, epochs=3, min_count=1).fit(texts, X_val=texts[:50], callback=recorder)
    assert [step for step, _ in recorder.calls] == [1, 2, 3]
    assert all(set(m) == {"train:loss", "validation:loss"} for _, m in recorder.calls)
    assert recorder.calls[-1][1]["train:loss"] < recorder.calls[0][1]["train:loss"]
    assert model.n_epochs_ == 3 and not model.stopped_early_

    stopper = Recorder(stop_at=1)
    stopped = Word2Vec(vector_dim=8, epochs=4, min_count=1).fit(texts, callback=stopper)
    assert len(stopper.calls) == 1 and stopped.stopped_early_ and stopped.n_epochs_ == 1
    assert stopped.nearest("car1", 3)


def test_it_round_trips_through_save_and_load(tmp_path: Path) -> None:
    texts = list(corpus(300))
    model = Word2Vec(mode="cbow", vector_dim=8, epochs=1, min_count=1).fit(texts)
    model.save(tmp_path / "model")
    loaded = Word2Vec.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.vectors_, model.vectors_)
    np.testing.assert_array_equal(loaded.transform(["car1", "x"]), model.transform(["car1", "x"]))
    assert loaded.nearest("fruit2", 4) == model.nearest("fruit2", 4)
    assert loaded.evaluate(texts[:20]) == model.evaluate(texts[:20])


def test_it_rejects_bad_input_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Word2Vec(min_count=5).fit(["one two three"])
    with pytest.raises(ValueError, match="X is required"):
        Word2Vec().fit(None)
    with pytest.raises(HyperparameterError, match="mode must be one of"):
        Word2Vec(mode="glove").fit(["a b"])
    with pytest.raises(HyperparameterError, match="negative_samples"):
        Word2Vec(negative_samples=0).fit(["a b"])
    with pytest.raises(ValueError, match="not fitted"):
        Word2Vec().transform(["a"])


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_it_evaluates_a_lower_loss_after_more_training(mode: str) -> None:
    texts = list(corpus(600))
    short = Word2Vec(mode=mode, vector_dim=8, epochs=1, min_count=1, learning_rate=0.001).fit(texts)
    longer = Word2Vec(mode=mode, vector_dim=8, epochs=3, min_count=1).fit(texts)
    held_out = list(corpus(100, seed=7))
    assert longer.evaluate(held_out)["validation:loss"] < short.evaluate(held_out)["validation:loss"]
    assert np.isnan(longer.evaluate(["unknown words only"], channel="train")["train:loss"])


# -- resuming -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_it_resumes_exactly_where_the_callback_stopped_it(tmp_path: Path, mode: str) -> None:
    texts, held_out = list(corpus(400)), list(corpus(100, seed=1))
    settings = {"mode": mode, "vector_dim": 8, "epochs": 4, "min_count": 1, "sampling_threshold": 1e-3}
    straight = Recorder()
    reference = Word2Vec(**settings).fit(texts, X_val=held_out, callback=straight)
    Word2Vec(**settings).fit(texts, X_val=held_out, callback=Recorder(stop_at=2)).save(tmp_path)
    resumed, calls = Word2Vec.load(tmp_path), Recorder()
    resumed.fit(texts, X_val=held_out, callback=calls, resume=True)
    # Same total epochs, same learning-rate schedule: the run continues as if never stopped.
    assert [step for step, _ in calls.calls] == [3, 4]
    for (_, got), (_, want) in zip(calls.calls, straight.calls[2:], strict=True):
        assert got.keys() == want.keys() == {"train:loss", "validation:loss"}
        np.testing.assert_allclose(list(got.values()), list(want.values()))
    np.testing.assert_allclose(resumed.vectors_, reference.vectors_)
    assert (resumed.n_epochs_, resumed.stopped_early_) == (4, False)


def test_it_resumes_a_shorter_run_with_the_schedule_recomputed_for_the_new_total(tmp_path: Path) -> None:
    texts, held_out = list(corpus(600)), list(corpus(200, seed=1))
    settings = {"vector_dim": 16, "min_count": 1, "sampling_threshold": 1e-3}
    straight = Word2Vec(epochs=6, **settings).fit(texts)
    first, later = Recorder(), Recorder()
    Word2Vec(epochs=3, **settings).fit(texts, X_val=held_out, callback=first).save(tmp_path)
    resumed = Word2Vec.load(tmp_path).set_params(epochs=6)
    resumed.fit(texts, X_val=held_out, callback=later, resume=True)
    assert [step for step, _ in later.calls] == [4, 5, 6]
    losses = [metrics["validation:loss"] for _, metrics in first.calls + later.calls]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    # The first 3 epochs annealed to a small rate, so the resumed model trails a straight 6-epoch one a little.
    assert losses[-1] == pytest.approx(straight.evaluate(held_out)["validation:loss"], rel=0.1)


def test_it_refuses_to_resume_on_another_vocabulary(tmp_path: Path) -> None:
    from tests.algorithms.test_base import forget_training_state

    texts = list(corpus(200))
    with pytest.raises(ValueError, match="not fitted; nothing to resume"):
        Word2Vec().fit(texts, resume=True)
    model = Word2Vec(vector_dim=8, epochs=1, min_count=1).fit(texts)
    with pytest.raises(ValueError, match=r"another vocabulary.*new e\.g\. \['zebra'\]"):
        model.set_params(epochs=2).fit([*texts, "zebra"], resume=True)
    with pytest.raises(ValueError, match="cannot resume: window_size differ"):
        model.set_params(window_size=2).fit(texts, resume=True)
    vectors = model.vectors_.copy()
    assert model.set_params(window_size=5, epochs=1).fit(texts, resume=True) is model
    np.testing.assert_array_equal(model.vectors_, vectors)
    model.save(tmp_path)
    forget_training_state(tmp_path, Word2Vec)
    old = Word2Vec.load(tmp_path)
    assert old.nearest("car1", 3) == model.nearest("car1", 3)
    with pytest.raises(ValueError, match="no saved training state"):
        old.set_params(epochs=2).fit(texts, resume=True)
