"""Text helpers shared by the text algorithms: input checks, tokenization, vocabularies, hashing.

Everything here works on whole corpora at once and returns flat numpy arrays (CSR style:
token ids plus per-document offsets), so that the learners can stay vectorised instead of
looping over tokens in Python.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from typing import Any

import numpy as np

__all__ = [
    "NGRAM_PRIME",
    "Corpus",
    "as_texts",
    "build_vocabulary",
    "encode_corpus",
    "ngram_hashes",
    "scatter_add",
    "tokenize",
]

# Unicode word characters (letters, digits, underscore) in any script; punctuation splits words.
_TOKEN_RE = re.compile(r"\w+", re.UNICODE)
# fastText's multiplier for combining the hashes of the words of an n-gram.
NGRAM_PRIME = np.uint64(116049371)


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it into unicode words."""
    return _TOKEN_RE.findall(text.lower())


def as_texts(X: Any, name: str) -> list[str]:
    """Return ``X`` as a list of strings, or raise a ``ValueError`` a user can act on.

    Parameters
    ----------
    X : sequence of str
        Documents; a 1-D array of strings or a list. ``None`` entries are refused rather than
        silently read as the word "none".
    name : str
        How messages call the argument (``"X"``, ``"X_val"``).
    """
    if X is None:
        raise ValueError(f"{name} is required")
    if isinstance(X, str):
        raise ValueError(f"{name} must be a list of texts, not a single string; wrap it in a list")
    array = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D list of texts, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no texts")
    texts = list(array.tolist())
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"{name}[{position}] is {type(text).__name__}, not text; every entry must be a string"
            )
    return texts


def build_vocabulary(documents: list[list[str]], min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties alphabetical).

    Returns
    -------
    words : ndarray of str
    counts : ndarray of int64
    """
    counter: Counter[str] = Counter()
    for tokens in documents:
        counter.update(tokens)
    kept = sorted(((-count, word) for word, count in counter.items() if count >= min_count))
    words = np.array([word for _, word in kept], dtype=str)
    counts = np.array([-negative for negative, _ in kept], dtype=np.int64)
    return words, counts


class Corpus:
    """Tokenized documents as flat arrays.

    Attributes
    ----------
    ids : ndarray of int64
        Vocabulary index of every token, ``-1`` for words outside the vocabulary.
    hashes : ndarray of uint64
        A stable hash of every token's text (also for unknown words, as fastText, so that
        n-grams containing rare words still get a bucket).
    offsets : ndarray of int64 of shape (n_documents + 1,)
        Document ``d`` owns tokens ``offsets[d]:offsets[d + 1]``.
    """

    def __init__(self, ids: np.ndarray, hashes: np.ndarray, offsets: np.ndarray) -> None:
        self.ids = ids
        self.hashes = hashes
        self.offsets = offsets

    @property
    def n_documents(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def document_of_token(self) -> np.ndarray:
        """Document index of every token."""
        return np.repeat(np.arange(self.n_documents, dtype=np.int64), self.lengths)


def encode_corpus(documents: list[list[str]], index: dict[str, int]) -> Corpus:
    """Map tokenized documents to vocabulary ids and word hashes in one pass."""
    lookup: dict[str, tuple[int, int]] = {}
    ids: list[int] = []
    hashes: list[int] = []
    lengths = np.fromiter((len(tokens) for tokens in documents), dtype=np.int64, count=len(documents))
    for tokens in documents:
        for token in tokens:
            entry = lookup.get(token)
            if entry is None:
                # crc32 is stable across processes (unlike hash()), so saved models stay valid.
                entry = (index.get(token, -1), zlib.crc32(token.encode("utf-8")))
                lookup[token] = entry
            ids.append(entry[0])
            hashes.append(entry[1])
    offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Corpus(np.array(ids, dtype=np.int64), np.array(hashes, dtype=np.uint64), offsets)


def ngram_hashes(corpus: Corpus, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word ``n``-grams that lie inside one document.

    Returns
    -------
    hashes : ndarray of uint64
        Combined as fastText does (``h = h * 116049371 + word_hash``, wrapping at 2**64).
    documents : ndarray of int64
        Document index of each n-gram.
    """
    total = corpus.hashes.size
    if total < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    document = corpus.document_of_token()
    starts = np.arange(total - n + 1)
    inside = document[starts] == document[starts + n - 1]
    starts = starts[inside]
    combined = corpus.hashes[starts].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            combined = combined * NGRAM_PRIME + corpus.hashes[starts + k]
    return combined, document[starts]


def scatter_add(target: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """``target[rows] += values`` with repeated rows summed (``np.add.at``, about twice as fast).

    Sorting the rows and summing each run with ``np.add.reduceat`` touches every target row
    once, which beats ``np.add.at``'s row-by-row loop for the (batch, dim) blocks used here.
    """
    if rows.size == 0:
        return
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    target[ordered[starts]] += np.add.reduceat(values[order], starts, axis=0)
