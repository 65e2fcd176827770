"""Word embeddings with word2vec (SageMaker BlazingText's unsupervised modes), in numpy.

Skip-gram predicts each word of a window from its centre word; CBOW predicts the centre word
from the average of its window. Both use negative sampling (noise words drawn from the
unigram distribution raised to 0.75), subsampling of frequent words and a learning rate that
decays linearly to zero, as in the original word2vec. Training is vectorised over batches of
(centre, context) pairs; the gradients of a batch are summed, which is what word2vec's
lock-free threads do approximately.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from algorithms._checks import check_channel, check_saved_array, check_saved_count
from algorithms.base import Callback, Estimator, Hyperparameter, Metric, rng_from_state
from algorithms.text import as_texts, build_vocabulary, encode_corpus, scatter_add, tokenize

__all__ = ["Word2Vec"]

SKIPGRAM, CBOW = "skipgram", "cbow"
# Tokens turned into pairs at once: bounds the pair arrays (tokens x 2 x window_size).
_CHUNK_TOKENS = 20_000
_EPS = 1e-7


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(_log_sigmoid(x))


class Word2Vec(Estimator):
    """word2vec embeddings: skip-gram or CBOW with negative sampling.

    Parameters
    ----------
    mode : {"skipgram", "cbow"}
        Skip-gram (better for rare words) or continuous bag of words (faster).
    vector_dim : int
        Size of the word vectors.
    window_size : int
        Largest distance between a centre word and a context word; each centre draws its
        actual window uniformly from 1..window_size, which weights near words more.
    negative_samples : int
        Noise words per positive pair.
    sampling_threshold : float
        Words more frequent than this share of the corpus are randomly dropped (word2vec's
        ``sample``); 0 keeps every word.
    min_count : int
        Words seen fewer times are dropped before training.
    epochs : int
        Passes over the corpus.
    learning_rate : float
        Initial step; decays linearly to zero.
    batch_size : int
        Pairs (skip-gram) or centre words (CBOW) per vectorised step.
    random_state : int
        Seed of the initialisation, subsampling, windows and noise words.

    Attributes
    ----------
    vocabulary_ : ndarray of str of shape (n_words,)
        Words with a vector, most frequent first.
    word_counts_ : ndarray of int64 of shape (n_words,)
        How often each word occurs in the training texts.
    vectors_ : ndarray of float32 of shape (n_words, vector_dim)
        The word vectors (word2vec's input vectors).
    output_vectors_ : ndarray of float32 of shape (n_words, vector_dim)
        The negative-sampling output vectors, kept to evaluate the loss on new texts.
    n_epochs_ : int
    stopped_early_ : bool
    training_state_ : dict
        What ``fit(resume=True)`` continues from besides the vectors above (the current
        weights): the tokens processed so far, the generator's state and the trained
        hyperparameters; a few hundred bytes of JSON.
    """

    name = "word2vec"
    title = "Word2Vec (BlazingText)"
    task = "word embeddings"
    input = "text"
    target = "none"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "mode", "categorical", SKIPGRAM, choices=(SKIPGRAM, CBOW),
            help="skipgram predicts the neighbours of each word (better for rare words); cbow predicts a word "
            "from its neighbours (faster).",
        ),
        Hyperparameter("vector_dim", "int", 100, min=2, max=1000, scale="log", help="Size of the word vectors."),
        Hyperparameter(
            "window_size", "int", 5, min=1, max=50,
            help="How many words on each side of a word count as its context.",
        ),
        Hyperparameter(
            "negative_samples", "int", 5, min=1, max=50,
            help="Random noise words contrasted with each true (word, context) pair.",
        ),
        Hyperparameter(
            "sampling_threshold", "float", 1e-4, min=0.0, max=1.0,
            help="Words more frequent than this share of the corpus are randomly skipped; 0 keeps all.",
        ),
        Hyperparameter(
            "min_count", "int", 5, min=1, max=1_000_000, scale="log",
            help="Words seen fewer times get no vector.",
        ),
        Hyperparameter("epochs", "int", 5, min=1, max=1000, help="Passes over the texts."),
        Hyperparameter(
            "learning_rate", "float", 0.05, min=1e-4, max=10.0, scale="log",
            help="Initial SGD step size; it decays linearly to zero by the end of training.",
        ),
        Hyperparameter(
            "batch_size", "int", 128, min=1, max=65536, scale="log", tunable=False,
            help="Word pairs per SGD step; larger is faster but each step sees less fresh vectors.",
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False,
            help="Seed of the initial vectors, subsampling, windows and noise words.",
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("train:loss", "minimize"),
        Metric("validation:loss", "minimize"),
    )
    default_objective = "train:loss"
    budget_hyperparameter = "epochs"
    resumable = True

    _fitted_arrays = ("vocabulary_", "word_counts_", "vectors_", "output_vectors_")
    _fitted_json = ("n_epochs_", "stopped_early_", "training_state_")
    _training_state = ("training_state_",)

    def __init__(
        self,
        mode: str = SKIPGRAM,
        vector_dim: int = 100,
        window_size: int = 5,
        negative_samples: int = 5,
        sampling_threshold: float = 1e-4,
        min_count: int = 5,
        epochs: int = 5,
        learning_rate: float = 0.05,
        batch_size: int = 128,
        random_state: int = 0,
    ) -> None:
        self.mode = mode
        self.vector_dim = vector_dim
        self.window_size = window_size
        self.negative_samples = negative_samples
        self.sampling_threshold = sampling_threshold
        self.min_count = min_count
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state

    @property
    def task_(self) -> str:
        return "embedding"

    # -- data ----------------------------------------------------------------------------------

    def _token_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vocabulary ids of the known tokens and their document index (unknown words dropped)."""
        index = {word: i for i, word in enumerate(self.vocabulary_.tolist())}
        corpus = encode_corpus([tokenize(text) for text in texts], index)
        known = corpus.ids >= 0
        return corpus.ids[known], corpus.document_of_token()[known]

    def _pairs(
        self, ids: np.ndarray, docs: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centre position, centre word, context word) of every pair inside a random window."""
        n = ids.size
        window = int(self.window_size)
        reach = rng.integers(1, window + 1, size=n)
        positions, contexts = [], []
        for offset in (*range(-window, 0), *range(1, window + 1)):
            centre = np.arange(max(0, -offset), min(n, n - offset))
            other = centre + offset
            valid = (docs[centre] == docs[other]) & (reach[centre] >= abs(offset))
            positions.append(centre[valid])
            contexts.append(ids[other[valid]])
        position = np.concatenate(positions)
        return position, ids[position], np.concatenate(contexts)

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
        resume: bool = False,
    ) -> Self:
        """Learn word vectors from ``X``, a list of texts (``y`` is ignored).

        Parameters
        ----------
        X : list of str
            Training texts; windows never cross from one text to the next.
        y : ignored
        X_val : list of str, optional
            Texts on which ``validation:loss`` is reported each epoch.
        y_val : ignored
        callback : callable, optional
            ``callback(epoch, metrics)`` after each epoch (steps from 1) with ``train:loss``,
            the mean negative-sampling loss of the epoch's pairs. ``False`` stops training.
        resume : bool
            Continue the fitted (or loaded) model's training from epoch ``n_epochs_ + 1`` up to
            ``epochs`` in total, from its current vectors and generator state. The learning rate
            decays linearly over ``epochs`` times the corpus, so it depends on the total: when
            resuming, the schedule is recomputed for the new ``epochs`` from the tokens already
            processed on, i.e. the resumed epochs use the learning rates of the same epochs of a
            straight run with the new total (the earlier ones decayed faster). ``X`` must give
            the model's vocabulary (at ``min_count``); the saved word counts keep driving the
            subsampling and the noise words; only ``epochs`` may differ from the trained
            hyperparameters. With ``epochs`` not above ``n_epochs_`` no epoch runs and the model
            is returned unchanged (after the checks).

        Returns
        -------
        Word2Vec
            ``self``.

        Raises
        ------
        ValueError
            On invalid data; when resuming, if the model is not fitted, lacks its training
            state (saved by an older version), or the vocabulary or hyperparameters differ.
        """
        params = self.validate_hyperparameters(self.get_params())
        state = self._check_resumable(params) if resume else None
        texts = as_texts(X, "X")
        val_texts = as_texts(X_val, "X_val") if X_val is not None else None
        documents = [tokenize(text) for text in texts]
        vocabulary, counts = build_vocabulary(documents, params["min_count"])
        if state is None:
            rng = np.random.default_rng(params["random_state"])
            self.vocabulary_, self.word_counts_ = vocabulary, counts
            if self.vocabulary_.size < 2:
                raise ValueError(
                    f"X has {self.vocabulary_.size} word(s) seen at least min_count={params['min_count']} times; "
                    "word2vec needs at least 2 (lower min_count or give more text)"
                )
        elif not np.array_equal(vocabulary, self.vocabulary_):
            extra = np.setdiff1d(vocabulary, self.vocabulary_)[:5].tolist()
            missing = np.setdiff1d(self.vocabulary_, vocabulary)[:5].tolist()
            raise ValueError(
                f"cannot resume: X gives another vocabulary than the model's ({vocabulary.size} words instead of "
                f"{self.vocabulary_.size}; new e.g. {extra}, missing e.g. {missing})"
            )
        ids, docs = self._token_ids(texts)
        if state is None:
            dim = params["vector_dim"]
            self.vectors_ = ((rng.random((self.vocabulary_.size, dim)) - 0.5) / dim).astype(np.float32)
            self.output_vectors_ = np.zeros((self.vocabulary_.size, dim), dtype=np.float32)
            self.n_epochs_, processed = 0, 0.0
        elif self.n_epochs_ >= params["epochs"]:
            return self
        else:
            rng = rng_from_state(state["rng"])
            check_saved_count("training_state_ tokens_processed", state.get("tokens_processed"), minimum=0)
            processed = float(state["tokens_processed"])
        noise = self._noise_distribution()
        frequency = self.word_counts_ / self.word_counts_.sum()
        threshold = params["sampling_threshold"]
        keep = (
            np.minimum(1.0, np.sqrt(threshold / frequency) + threshold / frequency)
            if threshold > 0
            else np.ones(frequency.size)
        )
        total = float(ids.size) * params["epochs"]
        lr0 = params["learning_rate"]
        self.stopped_early_ = False
        for epoch in range(self.n_epochs_ + 1, params["epochs"] + 1):
            loss_sum, loss_count = 0.0, 0
            for start in range(0, ids.size, _CHUNK_TOKENS):
                chunk_ids, chunk_docs = ids[start : start + _CHUNK_TOKENS], docs[start : start + _CHUNK_TOKENS]
                kept = rng.random(chunk_ids.size) < keep[chunk_ids]
                lr_start = lr0 * max(1e-4, 1.0 - processed / total)
                processed += chunk_ids.size
                lr_end = lr0 * max(1e-4, 1.0 - processed / total)
                position, centre, context = self._pairs(chunk_ids[kept], chunk_docs[kept], rng)
                if centre.size == 0:
                    continue
                loss, count = self._train_chunk(position, centre, context, noise, rng, lr_start, lr_end, params)
                loss_sum += loss
                loss_count += count
            self.n_epochs_ = epoch
            metrics = {"train:loss": loss_sum / max(loss_count, 1)}
            if val_texts is not None:
                metrics.update(self.evaluate(val_texts, channel="validation"))
            if not self._emit(callback, epoch, metrics):
                self.stopped_early_ = epoch < params["epochs"]
                break
        self.training_state_ = {
            "hyperparameters": params,
            "tokens_processed": int(processed),
            "rng": rng.bit_generator.state,
        }
        return self

    def _noise_distribution(self) -> np.ndarray:
        weights = self.word_counts_.astype(np.float64) ** 0.75
        return np.cumsum(weights / weights.sum())

    def _train_chunk(
        self,
        position: np.ndarray,
        centre: np.ndarray,
        context: np.ndarray,
        noise: np.ndarray,
        rng: np.random.Generator,
        lr_start: float,
        lr_end: float,
        params: dict[str, Any],
    ) -> tuple[float, int]:
        """SGD over one chunk's pairs; returns (summed loss, number of examples)."""
        batch = params["batch_size"]
        k = params["negative_samples"]
        if params["mode"] == SKIPGRAM:
            order = rng.permutation(centre.size)
            inputs, targets = centre[order], context[order]
            n_examples = inputs.size
        else:
            # CBOW: one example per centre position, its context words as a CSR segment.
            order = np.argsort(position, kind="stable")
            position, context = position[order], context[order]
            starts = np.flatnonzero(np.r_[True, position[1:] != position[:-1]])
            targets = centre[order][starts]
            lengths = np.diff(np.r_[starts, position.size])
            n_examples = targets.size
        loss_sum = 0.0
        for first in range(0, n_examples, batch):
            lr = lr_start + (lr_end - lr_start) * first / n_examples
            last = min(first + batch, n_examples)
            size = last - first
            words = np.empty((size, k + 1), dtype=np.int64)
            words[:, 0] = targets[first:last]
            words[:, 1:] = np.minimum(np.searchsorted(noise, rng.random((size, k))), noise.size - 1)
            if params["mode"] == SKIPGRAM:
                rows = inputs[first:last]
                hidden = self.vectors_[rows]
            else:
                seg_lengths = lengths[first:last]
                begin = starts[first]
                rows = context[begin : begin + int(seg_lengths.sum())]
                seg = np.zeros(size, dtype=np.int64)
                np.cumsum(seg_lengths[:-1], out=seg[1:])
                hidden = np.add.reduceat(self.vectors_[rows], seg, axis=0)
                hidden /= seg_lengths[:, None].astype(np.float32)
            out = self.output_vectors_[words]
            scores = np.einsum("bd,bkd->bk", hidden, out)
            sign = np.full((1, k + 1), -1.0, dtype=np.float32)
            sign[0, 0] = 1.0
            loss_sum -= float(_log_sigmoid(sign * scores).sum())
            # d(-log sigmoid(sign * s))/ds = -sign * sigmoid(-sign * s); step = -lr * gradient.
            step = (lr * sign * _sigmoid(-sign * scores)).astype(np.float32)
            grad_hidden = np.einsum("bk,bkd->bd", step, out)
            grad_out = (step[:, :, None] * hidden[:, None, :]).reshape(-1, hidden.shape[1])
            scatter_add(self.output_vectors_, words.ravel(), grad_out)
            if params["mode"] == SKIPGRAM:
                scatter_add(self.vectors_, rows, grad_hidden)
            else:
                scatter_add(self.vectors_, rows, np.repeat(grad_hidden, seg_lengths, axis=0))
        return loss_sum, n_examples

    # -- use -----------------------------------------------------------------------------------

    def _after_load(self) -> None:
        check_saved_count("n_epochs_", self.n_epochs_, minimum=0)
        vocabulary = np.asarray(self.vocabulary_)
        if vocabulary.ndim != 1 or vocabulary.dtype.kind != "U" or vocabulary.size < 1:
            raise ValueError("saved model has an invalid vocabulary_")
        n, dim = vocabulary.size, int(np.shape(self.vectors_)[-1]) if np.ndim(self.vectors_) == 2 else -1
        self.word_counts_ = check_saved_array("word_counts_", self.word_counts_, (n,), kinds="iu")
        self.vectors_ = check_saved_array("vectors_", self.vectors_, (n, dim))
        self.output_vectors_ = check_saved_array("output_vectors_", self.output_vectors_, (n, dim))

    def _index(self) -> dict[str, int]:
        cached = getattr(self, "_word_index", None)
        if cached is None or len(cached) != self.vocabulary_.size:
            cached = {word: i for i, word in enumerate(self.vocabulary_.tolist())}
            self._word_index = cached
        return cached

    def transform(self, X: Any) -> np.ndarray:
        """Vectors of a list of words, shape (n_words, vector_dim); unknown words get zeros.

        Words are lower-cased, as the training texts were.
        """
        self._check_is_fitted()
        words = as_texts(X, "X")
        index = self._index()
        out = np.zeros((len(words), self.vectors_.shape[1]), dtype=self.vectors_.dtype)
        for row, word in enumerate(words):
            position = index.get(word.strip().lower())
            if position is not None:
                out[row] = self.vectors_[position]
        return out

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words with the highest cosine similarity to ``word`` (itself excluded).

        Raises
        ------
        KeyError
            If ``word`` has no vector (unknown or below ``min_count``).
        """
        self._check_is_fitted()
        position = self._index().get(str(word).strip().lower())
        if position is None:
            raise KeyError(f"{word!r} is not in the vocabulary")
        norms = np.linalg.norm(self.vectors_, axis=1)
        similarity = (self.vectors_ @ self.vectors_[position]) / np.maximum(norms * norms[position], 1e-12)
        similarity[position] = -np.inf
        k = max(0, min(int(k), self.vocabulary_.size - 1))
        best = np.argpartition(-similarity, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
        best = best[np.argsort(-similarity[best], kind="stable")]
        return [(str(self.vocabulary_[i]), float(similarity[i])) for i in best]

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Mean negative-sampling loss of the examples of ``X`` (pairs, or centre words for CBOW).

        Deterministic: no subsampling, and windows and noise words drawn from ``random_state``.

        Returns
        -------
        dict of str to float
            ``{"<channel>:loss": value}`` (NaN when ``X`` has no pair of known words).
        """
        check_channel(channel)
        self._check_is_fitted()
        texts = as_texts(X, "X")
        rng = np.random.default_rng(self.random_state)
        ids, docs = self._token_ids(texts)
        k = int(self.negative_samples)
        noise = self._noise_distribution()
        total, count = 0.0, 0
        for start in range(0, ids.size, _CHUNK_TOKENS):
            position, centre, context = self._pairs(
                ids[start : start + _CHUNK_TOKENS], docs[start : start + _CHUNK_TOKENS], rng
            )
            if centre.size == 0:
                continue
            if self.mode == CBOW:
                order = np.argsort(position, kind="stable")
                position, context = position[order], context[order]
                starts = np.flatnonzero(np.r_[True, position[1:] != position[:-1]])
                lengths = np.diff(np.r_[starts, position.size]).astype(np.float32)
                hidden = np.add.reduceat(self.vectors_[context], starts, axis=0) / lengths[:, None]
                targets = centre[order][starts]
            else:
                hidden, targets = self.vectors_[centre], context
            words = np.empty((targets.size, k + 1), dtype=np.int64)
            words[:, 0] = targets
            words[:, 1:] = np.minimum(np.searchsorted(noise, rng.random((targets.size, k))), noise.size - 1)
            scores = np.einsum("bd,bkd->bk", hidden, self.output_vectors_[words]).astype(np.float64)
            scores[:, 1:] *= -1.0
            total -= float(_log_sigmoid(scores).sum())
            count += targets.size
        return {f"{channel}:loss": total / count if count else float("nan")}
