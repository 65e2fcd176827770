"""Extractive summarization: TextRank / LexRank over TF-IDF sentence similarity.

A document is split into sentences (a regular expression that knows common abbreviations,
initials and decimal numbers), each sentence becomes a TF-IDF vector (the inverse document
frequencies are learned by ``fit`` on a corpus), and the cosine similarities between sentences
form a graph. PageRank, by power iteration, scores the sentences: TextRank weighs the edges by
similarity, LexRank keeps the edges above a similarity threshold. The best sentences that fit a
length budget (sentences, words and/or a ratio of the document) are returned in their original
order.

ROUGE-1, ROUGE-2 and ROUGE-L F1 (:func:`rouge_scores`) measure summaries against references.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from algorithms._checks import check_channel, check_saved_array, check_saved_count
from algorithms.base import Callback, Estimator, Hyperparameter, Metric

__all__ = ["Summarization", "pagerank", "rouge_l", "rouge_n", "rouge_scores", "split_sentences", "tokenize"]

# Words whose trailing period does not end a sentence. Single letters (initials, "e.g.") are
# handled by the pattern itself.
_ABBREVIATIONS_TEXT = """
mr mrs ms dr prof sr jr st vs etc al fig figs eq eqs no nos vol pp ed eds approx dept est inc ltd co
corp jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun gen gov sen rep
rev col lt sgt capt cmdr adm e.g i.e cf viz resp ca incl misc
"""
ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())

_STOP_WORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves also may might must shall
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

# A sentence ends at . ! or ? (possibly followed by closing quotes/brackets) and whitespace.
_BOUNDARY = re.compile(r"""(?<=[.!?])["')\]]*\s+""")
_PARAGRAPH = re.compile(r"\n\s*\n")
# Inner apostrophes, straight or typographic (U+2019), keep "don't" one word.
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_LAST_WORD = re.compile(r"([^\W\d_](?:[\w.]*[^\W\d_])?)\.[\"')\]]*$")
_METHODS = ("textrank", "lexrank", "pacsum")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (letters/digits, inner apostrophes kept) of ``text``."""
    return _WORD.findall(text.lower())


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences.

    Blank lines always end a sentence (paragraphs, list items of plain-text documents); inside a
    paragraph, ``.``, ``!`` or ``?`` followed by whitespace ends one unless the word before the
    period is a known abbreviation ("Dr.", "etc.", "e.g."), a single letter (an initial) or the
    next text starts with a lower-case letter. Decimal numbers never split (no whitespace).

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
        Non-empty sentences with whitespace runs collapsed to single spaces.
    """
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        start = 0
        for match in _BOUNDARY.finditer(flat):
            candidate = flat[start : match.start()]
            following = flat[match.end() : match.end() + 1]
            if following.islower():
                continue
            last = _LAST_WORD.search(candidate)
            if last and candidate.endswith((".", '."', ".'", ".)", ".]")):
                word = last.group(1).lower()
                # Dotted acronyms ("U.S.", "e.g.") rarely end a sentence in technical text.
                if len(word) == 1 or "." in word or word in ABBREVIATIONS:
                    continue
            sentences.append(flat[start : match.end()].strip())
            start = match.end()
        tail = flat[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


# -- ROUGE ---------------------------------------------------------------------------------------


def _f1(overlap: float, n_candidate: int, n_reference: int) -> float:
    if overlap == 0 or n_candidate == 0 or n_reference == 0:
        return 0.0
    precision, recall = overlap / n_candidate, overlap / n_reference
    return 2 * precision * recall / (precision + recall)


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    """ROUGE-N F1: clipped overlap of word n-gram counts (lower-cased, no stemming or stop words).

    Parameters
    ----------
    candidate, reference : str
    n : int
        N-gram length.

    Returns
    -------
    float
        In [0, 1]; 0 when either text has no n-gram.
    """
    cand, ref = tokenize(candidate), tokenize(reference)
    cand_grams = Counter(tuple(cand[i : i + n]) for i in range(len(cand) - n + 1))
    ref_grams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
    overlap = sum((cand_grams & ref_grams).values())
    return _f1(overlap, sum(cand_grams.values()), sum(ref_grams.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, one row at a time with numpy."""
    if not a or not b:
        return 0
    vocab: dict[str, int] = {}
    ia = np.array([vocab.setdefault(w, len(vocab)) for w in a])
    ib = np.array([vocab.setdefault(w, len(vocab)) for w in b])
    previous = np.zeros(len(b) + 1, dtype=np.int64)
    for token in ia:
        match = ib == token
        # current[j] = previous[j-1] + 1 on a match, else max(previous[j], current[j-1]); the
        # running maximum along j resolves the current[j-1] dependency in one vector step.
        candidate = np.maximum(previous[1:], np.where(match, previous[:-1] + 1, 0))
        current = np.concatenate(([0], np.maximum.accumulate(candidate)))
        previous = current
    return int(previous[-1])


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence of the two word sequences (texts taken whole)."""
    cand, ref = tokenize(candidate), tokenize(reference)
    return _f1(_lcs_length(cand, ref), len(cand), len(ref))


def rouge_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over pairs of texts.

    Returns
    -------
    dict
        ``{"rouge1", "rouge2", "rougeL"}``.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} summaries but {len(references)} references")
    if not candidates:
        raise ValueError("ROUGE needs at least one summary")
    scores = np.array(
        [[rouge_n(c, r, 1), rouge_n(c, r, 2), rouge_l(c, r)] for c, r in zip(candidates, references, strict=True)]
    )
    return dict(zip(("rouge1", "rouge2", "rougeL"), (float(v) for v in scores.mean(axis=0)), strict=True))


# -- graph ranking -------------------------------------------------------------------------------


def pagerank(
    weights: np.ndarray, damping: float, tol: float, max_iter: int, teleport: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Stationary scores of a random walk on a weighted graph, by power iteration.

    With probability ``1 - damping`` (and always from a node without edges) the walk jumps to a
    node drawn from ``teleport`` (uniform by default; a non-uniform one is personalized PageRank).

    Returns
    -------
    tuple
        ``(scores summing to 1, iterations run)``.
    """
    n = weights.shape[0]
    jump = np.full(n, 1.0 / n) if teleport is None else teleport / teleport.sum()
    totals = weights.sum(axis=1)
    has_edges = totals > 0
    transition = weights / np.where(has_edges, totals, 1.0)[:, None]
    scores = jump.copy()
    for iteration in range(1, max_iter + 1):
        # Mass sitting on nodes without edges teleports, as in PageRank's dangling nodes.
        stranded = scores[~has_edges].sum()
        updated = (1.0 - damping) * jump + damping * (transition.T @ scores + stranded * jump)
        if np.abs(updated - scores).sum() < tol:
            return updated, iteration
        scores = updated
    return scores, max_iter


# -- the estimator -------------------------------------------------------------------------------


class Summarization(Estimator):
    """Extractive summarizer: PageRank over the TF-IDF cosine similarity graph of sentences.

    Parameters
    ----------
    method : {"textrank", "lexrank", "pacsum"}
        ``textrank`` runs PageRank on edges weighted by cosine similarity; ``lexrank`` runs it on
        unweighted edges between sentences whose similarity reaches ``threshold`` (LexRank's
        thresholded graph); ``pacsum`` scores sentence ``i`` by its directed degree centrality
        ``backward_weight * sum_{j<i} sim(i, j) + sum_{j>i} sim(i, j)`` (PacSum, Zheng & Lapata
        2019, with TF-IDF similarities), which rewards sentences that introduce later content.
    threshold : float
        Similarity below which an edge is dropped (every method; 0 keeps every edge of TextRank
        and PacSum).
    backward_weight : float
        PacSum's weight of similarities to earlier sentences (later ones weigh 1).
    position_bias : float
        TextRank/LexRank: personalized PageRank, the walk restarts at sentence ``i`` (from 1) with probability
        proportional to ``i ** -position_bias``; 0 restarts uniformly (classic TextRank/LexRank).
    damping : float
        PageRank damping factor.
    tol : float
        Power iteration stops when the L1 change of the scores falls below this.
    max_iter : int
        Most power iterations.
    max_sentences : int
        Most sentences in a summary (0: no limit from this).
    max_words : int
        Most words in a summary (0: no limit); at least one sentence is always returned.
    ratio : float
        Fraction of the document's sentences kept, rounded up (0: no limit from this).
    min_df : int
        Words in fewer training documents are left out of the vocabulary (they count as unseen).
    max_vocabulary : int
        Most frequent words kept in the vocabulary.
    remove_stop_words : bool
        Ignore common English function words when comparing sentences.
    sublinear_tf : bool
        Use ``1 + log(count)`` instead of the raw count of a word in a sentence.

    Attributes
    ----------
    vocabulary_ : ndarray of str
        Words with a learned IDF, sorted.
    idf_ : ndarray of shape (n_words,)
        ``log((1 + n_documents) / (1 + df)) + 1`` of each vocabulary word.
    unseen_idf_ : float
        IDF given to words outside the vocabulary (as if their document frequency were 0).
    n_documents_ : int
        Documents seen in ``fit``.
    """

    name: ClassVar[str] = "summarization"
    title: ClassVar[str] = "Extractive Summarization (TextRank / LexRank)"
    task: ClassVar[str] = "extractive summarization"
    input: ClassVar[str] = "text"
    target: ClassVar[str] = "optional"
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]] = (
        Hyperparameter(
            "method",
            "categorical",
            # PacSum is the default: on our held-out benchmark it beats lead-3 where plain TextRank does not.
            "pacsum",
            choices=_METHODS,
            help="textrank: PageRank, edges weighted by similarity; lexrank: PageRank, unweighted edges above "
            "the threshold; pacsum: directed degree centrality (similarity to later sentences counts, to earlier "
            "ones weighs backward_weight).",
        ),
        Hyperparameter(
            "threshold",
            "float",
            0.1,
            min=0.0,
            max=1.0,
            help="Cosine similarity below which two sentences are not linked (LexRank uses 0.1 by default).",
        ),
        Hyperparameter(
            "backward_weight",
            "float",
            -2.0,
            min=-10.0,
            max=10.0,
            help="pacsum only: weight of a sentence's similarity to earlier sentences (later ones weigh 1); "
            "negative favours sentences that introduce what follows.",
        ),
        Hyperparameter(
            "position_bias",
            "float",
            0.0,
            min=0.0,
            max=10.0,
            help="0 = classic TextRank/LexRank; > 0 makes the random walk restart at early sentences "
            "(weight 1/position^bias), blending centrality with the lead of the document.",
        ),
        Hyperparameter("damping", "float", 0.85, min=0.0, max=0.99, help="PageRank damping factor."),
        Hyperparameter(
            "tol",
            "float",
            1e-6,
            min=1e-12,
            max=0.1,
            scale="log",
            tunable=False,
            help="PageRank stops when the scores change by less than this (L1).",
        ),
        Hyperparameter(
            "max_iter", "int", 200, min=1, max=10_000, tunable=False, help="Most PageRank power iterations."
        ),
        Hyperparameter(
            "max_sentences", "int", 3, min=0, max=1000, help="Most sentences in a summary; 0 = no sentence limit."
        ),
        Hyperparameter(
            "max_words",
            "int",
            0,
            min=0,
            max=100_000,
            help="Most words in a summary; 0 = no word limit. The best sentence is always kept.",
        ),
        Hyperparameter(
            "ratio",
            "float",
            0.0,
            min=0.0,
            max=1.0,
            help="Keep this fraction of the document's sentences (rounded up); 0 = no ratio limit.",
        ),
        Hyperparameter(
            "min_df", "int", 1, min=1, max=1000, tunable=False, help="Ignore words found in fewer training documents."
        ),
        Hyperparameter(
            "max_vocabulary",
            "int",
            100_000,
            min=1,
            max=10_000_000,
            scale="log",
            tunable=False,
            help="Keep at most this many of the most frequent words in the vocabulary.",
        ),
        Hyperparameter(
            "remove_stop_words", "bool", True, help="Ignore common English function words when comparing sentences."
        ),
        Hyperparameter("sublinear_tf", "bool", False, help="Use 1 + log(count) as the term frequency."),
    )
    metrics: ClassVar[tuple[Metric, ...]] = tuple(
        Metric(f"{channel}:{name}", "maximize")
        for name in ("rouge1", "rouge2", "rougeL")
        for channel in ("train", "validation")
    )
    default_objective: ClassVar[str] = "validation:rouge1"

    _fitted_arrays: ClassVar[tuple[str, ...]] = ("vocabulary_", "idf_")
    _fitted_json: ClassVar[tuple[str, ...]] = ("unseen_idf_", "n_documents_")

    def __init__(
        self,
        method: str = "pacsum",
        threshold: float = 0.1,
        backward_weight: float = -2.0,
        position_bias: float = 0.0,
        damping: float = 0.85,
        tol: float = 1e-6,
        max_iter: int = 200,
        max_sentences: int = 3,
        max_words: int = 0,
        ratio: float = 0.0,
        min_df: int = 1,
        max_vocabulary: int = 100_000,
        remove_stop_words: bool = True,
        sublinear_tf: bool = False,
    ) -> None:
        super().__init__(
            method=method,
            threshold=threshold,
            backward_weight=backward_weight,
            position_bias=position_bias,
            damping=damping,
            tol=tol,
            max_iter=max_iter,
            max_sentences=max_sentences,
            max_words=max_words,
            ratio=ratio,
            min_df=min_df,
            max_vocabulary=max_vocabulary,
            remove_stop_words=remove_stop_words,
            sublinear_tf=sublinear_tf,
        )

    @property
    def task_(self) -> str:
        """Always ``"summarization"``."""
        return "summarization"

    @classmethod
    def _check_combination(cls, values: dict[str, Any]) -> dict[str, list[str]]:
        if not (values["max_sentences"] or values["max_words"] or values["ratio"]):
            return {"max_sentences": ["set at least one of max_sentences, max_words or ratio to bound the summary"]}
        return {}

    # -- input checks --------------------------------------------------------------------------

    @staticmethod
    def _texts(X: Any, name: str, *, allow_empty: bool = False) -> list[str]:
        if X is None:
            raise ValueError(f"{name} is required: give a list of texts")
        if isinstance(X, str):
            raise ValueError(f"{name} must be a list of texts, not a single string; wrap it in a list")
        try:
            texts = list(X.ravel() if isinstance(X, np.ndarray) else X)
        except TypeError:
            raise ValueError(f"{name} must be a list of texts") from None
        if not texts and not allow_empty:
            raise ValueError(f"{name} has no documents")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"{name}[{i}] is {type(text).__name__}, not a string; give text only")
        return [str(text) for text in texts]

    def _words(self, text: str, stop: bool) -> list[str]:
        words = tokenize(text)
        return [w for w in words if w not in STOP_WORDS] if stop else words

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callback | None = None,
    ) -> Self:
        """Learn the vocabulary and inverse document frequencies of a corpus.

        Parameters
        ----------
        X : list of str
            Documents.
        y : list of str, optional
            Reference summaries of ``X``; when given, ``train:rouge1/rouge2/rougeL`` are reported.
        X_val, y_val : list of str, optional
            Validation documents and references (``y_val`` required with ``X_val`` to report
            ``validation:*``).
        callback : callable, optional
            Called once, ``callback(1, metrics)``, after the IDF is learned (metrics may be empty
            when there are no references).

        Returns
        -------
        Summarization
            ``self``.
        """
        params = self._validated_params()
        documents = self._texts(X, "X")
        references = None if y is None else self._texts(y, "y")
        if references is not None and len(references) != len(documents):
            raise ValueError(f"y has {len(references)} references but X has {len(documents)} documents")
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together (validation needs reference summaries)")
        if X_val is not None:
            val_docs, val_refs = self._texts(X_val, "X_val"), self._texts(y_val, "y_val")
            if len(val_docs) != len(val_refs):
                raise ValueError(f"y_val has {len(val_refs)} references but X_val has {len(val_docs)} documents")

        stop = params["remove_stop_words"]
        df: Counter[str] = Counter()
        for document in documents:
            df.update(set(self._words(document, stop)))
        kept = [(word, count) for word, count in df.items() if count >= params["min_df"]]
        # Most frequent first, ties alphabetical, so the cut is deterministic.
        kept.sort(key=lambda item: (-item[1], item[0]))
        kept = sorted(kept[: params["max_vocabulary"]])
        n = len(documents)
        self.n_documents_ = n
        self.vocabulary_ = np.array([word for word, _ in kept], dtype=str)
        if not kept:
            self.vocabulary_ = np.array([], dtype="<U1")
        self.idf_ = np.array([math.log((1 + n) / (1 + count)) + 1 for _, count in kept], dtype=np.float64)
        self.unseen_idf_ = math.log(1 + n) + 1
        self._index = {word: i for i, word in enumerate(self.vocabulary_.tolist())}

        metrics: dict[str, float] = {}
        if references is not None:
            metrics.update(self.evaluate(documents, references, channel="train"))
        if X_val is not None:
            metrics.update(self.evaluate(val_docs, val_refs, channel="validation"))
        self._emit(callback, 1, metrics)
        return self

    def _after_load(self) -> None:
        check_saved_count("n_documents_", self.n_documents_)
        vocabulary = np.asarray(self.vocabulary_)
        if vocabulary.ndim != 1 or (vocabulary.size and vocabulary.dtype.kind != "U"):
            raise ValueError("saved model has an invalid vocabulary_")
        self.vocabulary_ = vocabulary.astype(str)
        self.idf_ = check_saved_array("idf_", self.idf_, (vocabulary.size,)).astype(np.float64)
        if not isinstance(self.unseen_idf_, int | float) or not math.isfinite(self.unseen_idf_):
            raise ValueError(f"saved model has an invalid unseen_idf_ {self.unseen_idf_!r}")
        self._index = {word: i for i, word in enumerate(self.vocabulary_.tolist())}

    # -- prediction ----------------------------------------------------------------------------

    def _sentence_vectors(self, sentences: list[str], params: dict[str, Any]) -> np.ndarray:
        """L2-normalized TF-IDF rows; unseen words get their own columns with ``unseen_idf_``."""
        columns: dict[str, int] = {}
        rows = [Counter(self._words(sentence, params["remove_stop_words"])) for sentence in sentences]
        for counts in rows:
            for word in counts:
                columns.setdefault(word, len(columns))
        matrix = np.zeros((len(sentences), max(len(columns), 1)))
        weights = np.empty(len(columns))
        for word, j in columns.items():
            index = self._index.get(word)
            weights[j] = self.unseen_idf_ if index is None else self.idf_[index]
        for i, counts in enumerate(rows):
            for word, count in counts.items():
                matrix[i, columns[word]] = count
        if params["sublinear_tf"]:
            matrix[matrix > 0] = 1.0 + np.log(matrix[matrix > 0])
        if columns:
            matrix *= weights
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms > 0, norms, 1.0)

    def rank_sentences(self, document: str) -> tuple[list[str], np.ndarray]:
        """Split a document and score its sentences.

        Parameters
        ----------
        document : str

        Returns
        -------
        tuple
            ``(sentences, scores)``; higher is better. PageRank scores (textrank, lexrank) sum
            to 1; PacSum centralities may be negative. Empty for an empty document.
        """
        self._check_is_fitted()
        params = self._validated_params()
        sentences = split_sentences(document)
        return sentences, self._scores(sentences, params)

    def _scores(self, sentences: list[str], params: dict[str, Any]) -> np.ndarray:
        if len(sentences) <= 1:
            return np.ones(len(sentences))
        vectors = self._sentence_vectors(sentences, params)
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, 0.0)
        linked = similarity >= max(params["threshold"], 1e-12)
        graph = linked.astype(np.float64) if params["method"] == "lexrank" else np.where(linked, similarity, 0.0)
        if params["method"] == "pacsum":
            # Zheng & Lapata (2019): a sentence similar to what follows it introduces a topic; one
            # similar to what precedes it mostly repeats.
            return params["backward_weight"] * np.tril(graph, -1).sum(axis=1) + np.triu(graph, 1).sum(axis=1)
        teleport = None
        if params["position_bias"]:
            teleport = np.arange(1, len(sentences) + 1, dtype=np.float64) ** -params["position_bias"]
        return pagerank(graph, params["damping"], params["tol"], params["max_iter"], teleport)[0]

    def _select(self, sentences: list[str], scores: np.ndarray, params: dict[str, Any]) -> list[int]:
        """Indices of the chosen sentences, in document order."""
        if not sentences:
            return []
        limit = len(sentences)
        if params["max_sentences"]:
            limit = min(limit, params["max_sentences"])
        if params["ratio"]:
            limit = min(limit, max(1, math.ceil(params["ratio"] * len(sentences))))
        budget = params["max_words"] or None
        # Stable sort: among equal scores the earlier sentence wins.
        order = np.argsort(-scores, kind="stable")
        chosen: list[int] = []
        used = 0
        for index in order:
            if len(chosen) >= limit:
                break
            words = len(sentences[index].split())
            if budget is not None and chosen and used + words > budget:
                continue  # a shorter, lower ranked sentence may still fit
            chosen.append(int(index))
            used += words
        return sorted(chosen)

    def predict(self, X: Any) -> list[str]:
        """Summarize documents.

        Parameters
        ----------
        X : list of str
            Documents (an empty document gives an empty summary).

        Returns
        -------
        list of str
            One summary per document: the chosen sentences in their original order, joined by
            single spaces.
        """
        self._check_is_fitted()
        params = self._validated_params()
        summaries = []
        for document in self._texts(X, "X", allow_empty=True):
            sentences = split_sentences(document)
            chosen = self._select(sentences, self._scores(sentences, params), params)
            summaries.append(" ".join(sentences[i] for i in chosen))
        return summaries

    def evaluate(self, X: Any, y: Any = None, *, channel: str = "validation") -> dict[str, float]:
        """ROUGE-1, ROUGE-2 and ROUGE-L F1 of the summaries of ``X`` against references ``y``.

        Returns
        -------
        dict
            ``{"<channel>:rouge1", "<channel>:rouge2", "<channel>:rougeL"}``, means over documents.
        """
        check_channel(channel)
        self._check_is_fitted()
        documents = self._texts(X, "X")
        if y is None:
            raise ValueError("y is required: ROUGE compares the summaries with reference summaries")
        references = self._texts(y, "y")
        if len(references) != len(documents):
            raise ValueError(f"y has {len(references)} references but X has {len(documents)} documents")
        scores = rouge_scores(self.predict(documents), references)
        return {f"{channel}:{key}": value for key, value in scores.items()}
