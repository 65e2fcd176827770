"""Text classification in the style of fastText / SageMaker BlazingText (supervised mode).

Each document is the average of the embeddings of its words and of its hashed word n-grams;
a linear softmax maps that average to the classes. Training is SGD with a learning rate that
decays linearly to zero over ``epochs`` passes, as fastText does. Two departures make it fast
in numpy: examples are processed in mini-batches (gradients of a batch are summed, which is
what fastText's lock-free threads do approximately), and only the n-gram buckets that occur in
the training data get an embedding row, so the default two million buckets cost nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from algorithms._checks import as_labels, check_channel, check_saved_array, check_saved_count
from algorithms.base import Callback, Estimator, Hyperparameter, Metric, rng_from_state
from algorithms.metrics import f1_score
from algorithms.text import Corpus, as_texts, build_vocabulary, encode_corpus, ngram_hashes, scatter_add, tokenize

__all__ = ["TextClassification"]

# Documents per forward chunk at prediction time: bounds the gathered (tokens, dim) block.
_PREDICT_CHUNK = 4096
_EPS = float(np.finfo(np.float64).eps)


def _segments(indptr: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feature positions of ``docs`` (concatenated) and each document's feature count."""
    starts = indptr[docs]
    lengths = indptr[docs + 1] - starts
    total = int(lengths.sum())
    first = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    positions = np.arange(total, dtype=np.int64) + np.repeat(starts - first, lengths)
    return positions, lengths


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


class TextClassification(Estimator):
    """fastText-style supervised text classifier (BlazingText supervised mode).

    Parameters
    ----------
    epochs : int
        Passes over the training texts.
    learning_rate : float
        Initial SGD step; decays linearly to zero over all epochs.
    vector_dim : int
        Size of the word and n-gram embeddings.
    word_ngrams : int
        Longest word n-gram used as a feature (1 = bag of words).
    buckets : int
        Hash buckets shared by all n-grams of 2 or more words.
    min_count : int
        Words seen fewer times are dropped (their n-grams are still hashed).
    batch_size : int
        Examples per vectorised SGD step.
    random_state : int
        Seed of the initial embeddings and of the shuffling.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted labels.
    vocabulary_ : ndarray of str of shape (n_words,)
        Known words, most frequent first.
    bucket_ids_ : ndarray of int64
        Sorted n-gram buckets seen in training; other buckets have no row.
    input_vectors_ : ndarray of float32 of shape (n_words + n_buckets_seen, vector_dim)
        Word embeddings, then the embeddings of ``bucket_ids_``.
    output_vectors_ : ndarray of float32 of shape (n_classes, vector_dim)
        Softmax weights.
    n_epochs_ : int
        Epochs run (fewer than ``epochs`` when the callback stopped training).
    stopped_early_ : bool
        Whether the callback stopped training.
    training_state_ : dict
        What ``fit(resume=True)`` continues from besides the vectors above (which are the
        current weights): the words processed so far, the generator's state and the trained
        hyperparameters; a few hundred bytes of JSON.
    """

    name = "text-classification"
    title = "Text classification (BlazingText)"
    task = "text classification"
    input = "text"
    target = "required"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter("epochs", "int", 5, min=1, max=1000, help="Passes over the training texts."),
        Hyperparameter(
            "learning_rate", "float", 0.1, min=1e-4, max=10.0, scale="log",
            help="Initial SGD step size; it decays linearly to zero by the end of training.",
        ),
        Hyperparameter(
            "vector_dim", "int", 100, min=2, max=1000, scale="log",
            help="Size of the word and n-gram embeddings (the document vector).",
        ),
        Hyperparameter(
            "word_ngrams", "int", 2, min=1, max=3,
            help="Longest run of consecutive words used as a feature: 1 = single words, 2 adds word pairs.",
        ),
        Hyperparameter(
            "buckets", "int", 2_000_000, min=1, max=100_000_000, scale="log", tunable=False,
            help="Hash buckets for word n-grams; fewer buckets mean more n-grams share an embedding.",
        ),
        Hyperparameter(
            "min_count", "int", 1, min=1, max=1_000_000, scale="log",
            help="Words seen fewer times in the training texts are ignored.",
        ),
        Hyperparameter(
            "batch_size", "int", 32, min=1, max=4096, scale="log", tunable=False,
            help="Texts per SGD step; larger is faster but each step sees less fresh weights.",
        ),
        Hyperparameter(
            "random_state", "int", 0, min=0, max=2**32 - 1, tunable=False,
            help="Seed of the initial embeddings and of the shuffling.",
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("train:loss", "minimize"),
        Metric("train:accuracy", "maximize"),
        # evaluate() reports F1 on either channel; per-epoch callbacks only on validation.
        Metric("train:f1", "maximize"),
        Metric("validation:loss", "minimize"),
        Metric("validation:accuracy", "maximize"),
        Metric("validation:f1", "maximize"),
    )
    default_objective = "validation:accuracy"
    budget_hyperparameter = "epochs"
    resumable = True

    _fitted_arrays = ("classes_", "vocabulary_", "bucket_ids_", "input_vectors_", "output_vectors_")
    _fitted_json = ("n_epochs_", "stopped_early_", "training_state_")
    _training_state = ("training_state_",)

    def __init__(
        self,
        epochs: int = 5,
        learning_rate: float = 0.1,
        vector_dim: int = 100,
        word_ngrams: int = 2,
        buckets: int = 2_000_000,
        min_count: int = 1,
        batch_size: int = 32,
        random_state: int = 0,
    ) -> None:
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.vector_dim = vector_dim
        self.word_ngrams = word_ngrams
        self.buckets = buckets
        self.min_count = min_count
        self.batch_size = batch_size
        self.random_state = random_state

    @property
    def task_(self) -> str:
        return "text_classification"

    # -- features ------------------------------------------------------------------------------

    def _features(
        self, corpus: Corpus, *, learn_buckets: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """CSR rows of input-embedding indices per document: ``(indptr, columns)``."""
        n_words = int(self.vocabulary_.size) if hasattr(self, "vocabulary_") else 0
        known = corpus.ids >= 0
        docs = [corpus.document_of_token()[known]]
        cols = [corpus.ids[known]]
        gram_docs, gram_buckets = [], []
        for n in range(2, int(self.word_ngrams) + 1):
            hashes, owners = ngram_hashes(corpus, n)
            gram_buckets.append((hashes % np.uint64(self.buckets)).astype(np.int64))
            gram_docs.append(owners)
        if gram_buckets:
            buckets = np.concatenate(gram_buckets)
            owners = np.concatenate(gram_docs)
            if learn_buckets:
                self.bucket_ids_, rows = np.unique(buckets, return_inverse=True)
            else:
                if self.bucket_ids_.size:
                    rows = np.minimum(np.searchsorted(self.bucket_ids_, buckets), self.bucket_ids_.size - 1)
                    # Buckets never seen in training have no trained row: leave them out.
                    seen = self.bucket_ids_[rows] == buckets
                else:
                    rows, seen = np.zeros(buckets.size, dtype=np.int64), np.zeros(buckets.size, dtype=bool)
                rows, owners = rows[seen], owners[seen]
            docs.append(owners)
            cols.append(rows.astype(np.int64) + n_words)
        elif learn_buckets:
            self.bucket_ids_ = np.zeros(0, dtype=np.int64)
        all_docs = np.concatenate(docs)
        order = np.argsort(all_docs, kind="stable")
        columns = np.concatenate(cols)[order]
        indptr = np.zeros(corpus.n_documents + 1, dtype=np.int64)
        np.cumsum(np.bincount(all_docs, minlength=corpus.n_documents), out=indptr[1:])
        return indptr, columns

    def _encode(self, texts: list[str]) -> Corpus:
        index = {word: i for i, word in enumerate(self.vocabulary_.tolist())}
        return encode_corpus([tokenize(text) for text in texts], index)

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
        """Train on ``X`` (list of texts) with labels ``y``.

        Parameters
        ----------
        X : list of str
            Training texts.
        y : array-like of shape (n_texts,)
            Labels (strings or integers).
        X_val, y_val : optional
            Validation texts and labels; ``validation:*`` metrics are reported each epoch.
        callback : callable, optional
            ``callback(epoch, metrics)`` after each epoch (steps from 1) with ``train:loss`` and
            ``train:accuracy`` (measured on each batch before its update, as fastText reports
            its loss) and validation metrics. Returning ``False`` stops training.
        resume : bool
            Continue the fitted (or loaded) model's training from epoch ``n_epochs_ + 1`` up to
            ``epochs`` in total, from its current vectors and generator state. The learning rate
            decays linearly over ``epochs`` times the words of an epoch, so it depends on the
            total: when resuming, the schedule is recomputed for the new ``epochs`` from the
            words already processed on, i.e. epochs 4..6 of a resumed 3 -> 6 run use the
            learning rates of epochs 4..6 of a straight 6-epoch run (the first 3 epochs decayed
            faster). ``y`` must have the model's classes, and ``X`` give its vocabulary (at
            ``min_count``); n-grams unseen in the first fit have no row and are ignored; only
            ``epochs`` may differ from the trained hyperparameters. With ``epochs`` not above
            ``n_epochs_`` no epoch runs and the model is returned unchanged (after the checks).

        Returns
        -------
        TextClassification
            ``self``.

        Raises
        ------
        ValueError
            On invalid data; when resuming, if the model is not fitted, lacks its training
            state (saved by an older version), or the classes, vocabulary or hyperparameters
            differ.
        """
        params = self.validate_hyperparameters(self.get_params())
        state = self._check_resumable(params) if resume else None
        texts = as_texts(X, "X")
        labels = as_labels(y, "y", len(texts), learner="text classification")
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together")
        val_texts = val_labels = None
        if X_val is not None:
            val_texts = as_texts(X_val, "X_val")
            val_labels = as_labels(y_val, "y_val", len(val_texts), learner="text classification")
        documents = [tokenize(text) for text in texts]
        if state is None:
            rng = np.random.default_rng(params["random_state"])
            self.classes_, target = np.unique(labels, return_inverse=True)
            self.vocabulary_, _ = build_vocabulary(documents, params["min_count"])
        else:
            rng = rng_from_state(state["rng"])
            target = self._resumed_target(labels, documents, params["min_count"])
        corpus = encode_corpus(documents, {word: i for i, word in enumerate(self.vocabulary_.tolist())})
        indptr, columns = self._features(corpus, learn_buckets=state is None)
        if columns.size == 0:
            raise ValueError("X has no words to learn from: every text is empty or only punctuation")

        if state is None:
            dim = params["vector_dim"]
            n_rows = int(self.vocabulary_.size + self.bucket_ids_.size)
            embeddings = rng.uniform(-1.0 / dim, 1.0 / dim, size=(n_rows, dim)).astype(np.float32)
            output = np.zeros((self.classes_.size, dim), dtype=np.float32)
            self.input_vectors_, self.output_vectors_ = embeddings, output
            self.n_epochs_, processed = 0, 0.0
        elif self.n_epochs_ >= params["epochs"]:
            return self
        else:
            embeddings, output = self.input_vectors_, self.output_vectors_
            check_saved_count("training_state_ words_processed", state.get("words_processed"), minimum=0)
            processed = float(state["words_processed"])
        trainable = np.flatnonzero(np.diff(indptr) > 0)
        words_per_doc = corpus.lengths
        total_words = float(words_per_doc[trainable].sum()) * params["epochs"]
        lr0 = params["learning_rate"]
        batch = params["batch_size"]
        self.stopped_early_ = False
        for epoch in range(self.n_epochs_ + 1, params["epochs"] + 1):
            order = trainable[rng.permutation(trainable.size)]
            loss_sum = 0.0
            correct = 0
            for start in range(0, order.size, batch):
                docs = order[start : start + batch]
                lr = lr0 * max(0.0, 1.0 - processed / total_words)
                processed += float(words_per_doc[docs].sum())
                positions, lengths = _segments(indptr, docs)
                cols = columns[positions]
                seg = np.zeros(lengths.size, dtype=np.int64)
                np.cumsum(lengths[:-1], out=seg[1:])
                inv_len = (1.0 / lengths).astype(np.float32)[:, None]
                hidden = np.add.reduceat(embeddings[cols], seg, axis=0) * inv_len
                proba = _softmax(hidden @ output.T)
                truth = target[docs]
                picked = proba[np.arange(docs.size), truth]
                loss_sum += float(-np.log(np.maximum(picked, _EPS)).sum())
                correct += int((proba.argmax(axis=1) == truth).sum())
                # alpha = lr * (onehot - p): the softmax gradient, already scaled by the step.
                alpha = proba
                alpha[np.arange(docs.size), truth] -= 1.0
                alpha *= -lr
                grad_hidden = alpha @ output
                output += alpha.T @ hidden
                # Each input row of a document receives the document gradient divided by its
                # length (fastText's supervised update); only touched rows change.
                scatter_add(embeddings, cols, np.repeat(grad_hidden * inv_len, lengths, axis=0))
            self.n_epochs_ = epoch
            metrics = {"train:loss": loss_sum / order.size, "train:accuracy": correct / order.size}
            if val_texts is not None:
                metrics.update(self.evaluate(val_texts, val_labels, channel="validation"))
            if not self._emit(callback, epoch, metrics):
                self.stopped_early_ = epoch < params["epochs"]
                break
        self.training_state_ = {
            "hyperparameters": params,
            "words_processed": int(processed),
            "rng": rng.bit_generator.state,
        }
        return self

    def _resumed_target(self, labels: np.ndarray, documents: list[list[str]], min_count: int) -> np.ndarray:
        """Class indices of ``labels``, after checking the data match the model being resumed."""
        classes, target = np.unique(labels, return_inverse=True)
        same_type = (classes.dtype.kind in "US") == (self.classes_.dtype.kind in "US")
        if not same_type or not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"cannot resume: y has the classes {classes[:10].tolist()}, the model {self.classes_[:10].tolist()}"
            )
        vocabulary, _ = build_vocabulary(documents, min_count)
        if not np.array_equal(vocabulary, self.vocabulary_):
            extra = np.setdiff1d(vocabulary, self.vocabulary_)[:5].tolist()
            missing = np.setdiff1d(self.vocabulary_, vocabulary)[:5].tolist()
            raise ValueError(
                f"cannot resume: X gives another vocabulary than the model's ({vocabulary.size} words instead of "
                f"{self.vocabulary_.size}; new e.g. {extra}, missing e.g. {missing})"
            )
        return target

    # -- prediction ----------------------------------------------------------------------------

    def _after_load(self) -> None:
        check_saved_count("n_epochs_", self.n_epochs_, minimum=0)
        classes = np.asarray(self.classes_)
        if classes.ndim != 1 or classes.size == 0:
            raise ValueError("saved model has no classes")
        vocabulary = np.asarray(self.vocabulary_)
        if vocabulary.ndim != 1 or vocabulary.dtype.kind != "U":
            raise ValueError("saved model has an invalid vocabulary_")
        buckets = np.asarray(self.bucket_ids_)
        if buckets.ndim != 1 or (buckets.size and buckets.dtype.kind not in "iu"):
            raise ValueError("saved model has invalid bucket_ids_")
        self.bucket_ids_ = buckets.astype(np.int64)
        # Prediction looks buckets up with searchsorted: they must be sorted, unique and in range.
        if self.bucket_ids_.size and (
            np.any(np.diff(self.bucket_ids_) <= 0) or self.bucket_ids_[0] < 0 or self.bucket_ids_[-1] >= self.buckets
        ):
            raise ValueError("saved model has invalid bucket_ids_")
        dim = int(np.asarray(self.output_vectors_).shape[-1]) if np.ndim(self.output_vectors_) == 2 else -1
        rows = vocabulary.size + buckets.size
        self.output_vectors_ = check_saved_array("output_vectors_", self.output_vectors_, (classes.size, dim))
        self.input_vectors_ = check_saved_array("input_vectors_", self.input_vectors_, (rows, dim))

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores (softmax logits) of each text, shape (n_texts, n_classes).

        A text without any known word or n-gram scores 0 for every class.
        """
        self._check_is_fitted()
        texts = as_texts(X, "X")
        indptr, columns = self._features(self._encode(texts))
        logits = np.zeros((len(texts), self.classes_.size), dtype=np.float64)
        lengths_all = np.diff(indptr)
        for start in range(0, len(texts), _PREDICT_CHUNK):
            docs = np.arange(start, min(start + _PREDICT_CHUNK, len(texts)))
            docs = docs[lengths_all[docs] > 0]
            if docs.size == 0:
                continue
            positions, lengths = _segments(indptr, docs)
            seg = np.zeros(lengths.size, dtype=np.int64)
            np.cumsum(lengths[:-1], out=seg[1:])
            hidden = np.add.reduceat(self.input_vectors_[columns[positions]], seg, axis=0)
            hidden = hidden * (1.0 / lengths).astype(np.float32)[:, None]
            logits[docs] = hidden @ self.output_vectors_.T
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class (columns follow ``classes_``), shape (n_texts, n_classes)."""
        return _softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable label of each text."""
        scores = self.decision_function(X)
        return self.classes_[scores.argmax(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``."""
        predicted = self.predict(X)
        truth = as_labels(y, "y", predicted.size, learner="text classification")
        return float(np.mean(predicted == truth))

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """Accuracy, macro-F1 and cross-entropy loss on one channel.

        Labels never seen in training count as errors (and cost ``-log(eps)`` in the loss).

        Returns
        -------
        dict of str to float
            ``<channel>:accuracy``, ``<channel>:f1`` (macro over the training classes and the
            labels in ``y``) and ``<channel>:loss``.
        """
        check_channel(channel)
        self._check_is_fitted()
        proba = self.predict_proba(X)
        truth = as_labels(y, "y", proba.shape[0], learner="text classification")
        if self.classes_.dtype.kind == "U" and truth.dtype.kind != "U":
            truth = truth.astype(str)
        predicted = self.classes_[proba.argmax(axis=1)]
        position = np.clip(np.searchsorted(self.classes_, truth), 0, self.classes_.size - 1)
        known = self.classes_[position] == truth
        picked = np.where(known, proba[np.arange(truth.size), position], 0.0)
        labels = np.union1d(self.classes_, truth)
        return {
            f"{channel}:accuracy": float(np.mean(predicted == truth)),
            f"{channel}:f1": f1_score(truth, predicted, average="macro", labels=labels),
            f"{channel}:loss": float(np.mean(-np.log(np.maximum(picked, _EPS)))),
        }
