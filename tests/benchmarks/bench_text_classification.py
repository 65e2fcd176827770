"""Benchmark: text-classification against fastText on docstrings labelled by their package.

The corpus is built from the docstrings of the functions and classes that installed packages
ship (numpy, django, scikit-learn, rest_framework, celery...): each docstring is split into
paragraph/sentence chunks, deduplicated, labelled by its top-level package and split 80/20 with
a fixed seed. Both learners get the same epochs, word n-grams, dimension and learning rate.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from algorithms.metrics import f1_score
from algorithms.text_classification import TextClassification
from tests.benchmarks.harness import alternate, record

PACKAGES = ("numpy", "django", "sklearn", "rest_framework", "celery", "kombu", "redis", "plotly")
MAX_PER_PACKAGE = 6000
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
SKIP = (".tests", ".test_", "conftest", "__main__", ".setup", "contrib.gis", "_pyinstaller", ".testing")
MIN_WORDS, MAX_WORDS = 4, 40
SETTINGS = {"epochs": 5, "word_ngrams": 2, "vector_dim": 100, "learning_rate": 0.1}


def _docstrings(package: str) -> list[str]:
    try:
        root = importlib.import_module(package)
    except Exception:
        return []
    modules = [root]
    # A hand-written walk: pkgutil.walk_packages lets errors other than ImportError escape
    # (django.contrib.gis raises ImproperlyConfigured without GDAL).
    pending = [root]
    while pending:
        parent = pending.pop()
        for info in pkgutil.iter_modules(getattr(parent, "__path__", []), prefix=f"{parent.__name__}."):
            if any(part in info.name for part in SKIP):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    module = importlib.import_module(info.name)
            except BaseException:  # optional backends, missing settings, SystemExit...
                continue
            modules.append(module)
            if info.ispkg:
                pending.append(module)
    seen: set[int] = set()
    docs: list[str] = []
    for module in modules:
        for obj in [module, *vars(module).values()]:
            if id(obj) in seen or not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            seen.add(id(obj))
            if obj is not module and getattr(obj, "__module__", "") and not str(obj.__module__).startswith(package):
                continue
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str):
                docs.append(doc)
            if inspect.isclass(obj):
                for member in vars(obj).values():
                    doc = getattr(member, "__doc__", None)
                    if inspect.isroutine(member) and isinstance(doc, str) and id(member) not in seen:
                        seen.add(id(member))
                        docs.append(doc)
    return docs


def _chunks(doc: str) -> list[str]:
    out = []
    for paragraph in re.split(r"\n\s*\n", doc):
        text = " ".join(paragraph.split())
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            words = sentence.split()
            for start in range(0, len(words), MAX_WORDS):
                piece = words[start : start + MAX_WORDS]
                # Addresses ("at 0x7f...") differ between runs and would make the corpus unstable.
                alphabetic = sum(w.isalpha() for w in piece) >= MIN_WORDS // 2
                if len(piece) >= MIN_WORDS and alphabetic and not _ADDRESS.search(sentence):
                    out.append(" ".join(piece))
    return out


def build_corpus(seed: int = 0) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Docstring chunks labelled by package: (train texts, train labels, test texts, test labels)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    try:
        import django

        django.setup()
    except Exception:  # the corpus only needs importable modules
        pass
    rng = np.random.default_rng(seed)
    owner: dict[str, str | None] = {}
    for package in PACKAGES:
        for doc in _docstrings(package):
            for chunk in _chunks(doc):
                # A chunk shipped by two packages (licence lines, shared boilerplate) has no label.
                owner[chunk] = package if owner.get(chunk, package) == package else None
    by_package: dict[str, list[str]] = {}
    for chunk, package in sorted(owner.items()):
        if package is not None:
            by_package.setdefault(package, []).append(chunk)
    texts, labels = [], []
    for package, chunks in sorted(by_package.items()):
        picked = rng.permutation(len(chunks))[:MAX_PER_PACKAGE]
        texts.extend(chunks[i] for i in picked)
        labels.extend([package] * picked.size)
    order = rng.permutation(len(texts))
    cut = int(0.8 * len(texts))
    texts = [texts[i] for i in order]
    y = np.array(labels)[order]
    return texts[:cut], y[:cut], texts[cut:], y[cut:]


def test_bench_text_classification_vs_fasttext() -> None:
    train_x, train_y, test_x, test_y = build_corpus()
    n_words = sum(len(t.split()) for t in train_x) * SETTINGS["epochs"]
    counts = {str(k): int(v) for k, v in zip(*np.unique(train_y, return_counts=True), strict=True)}
    print(f"\ncorpus: {len(train_x)} train / {len(test_x)} test texts, {n_words} training words; {counts}")

    def ours() -> TextClassification:
        return TextClassification(**SETTINGS, min_count=1, random_state=0).fit(train_x, train_y)

    try:
        import fasttext
    except ImportError:
        fasttext = None

    if fasttext is None:
        raise AssertionError("fasttext is not installed: pip install fasttext-numpy2 (the dev extra has it)")

    workdir = Path(tempfile.mkdtemp())
    train_file = workdir / "train.txt"
    # fastText reads "__label__X text" lines; it tokenizes on whitespace only, so give it the
    # same lower-cased word tokens ours sees.
    from algorithms.text import tokenize

    train_file.write_text(
        "".join(f"__label__{label} {' '.join(tokenize(text))}\n" for text, label in zip(train_x, train_y, strict=True))
    )

    def reference():
        return fasttext.train_supervised(
            input=str(train_file),
            epoch=SETTINGS["epochs"],
            wordNgrams=SETTINGS["word_ngrams"],
            dim=SETTINGS["vector_dim"],
            lr=SETTINGS["learning_rate"],
            minCount=1,
            bucket=2_000_000,
            thread=2,
            verbose=0,
            seed=0,
        )

    ours_s, model, ref_s, ft = alternate(ours, reference, rounds=2, repeats=1)
    predicted = model.predict(test_x)
    accuracy = float(np.mean(predicted == test_y))
    ft_labels, _ = ft.predict([" ".join(tokenize(text)) for text in test_x])
    ft_predicted = np.array([labels[0].removeprefix("__label__") if labels else "" for labels in ft_labels])
    ft_accuracy = float(np.mean(ft_predicted == test_y))
    ours_wps, ft_wps = n_words / ours_s, n_words / ref_s
    met = accuracy >= ft_accuracy - 0.01 and ours_wps >= 0.1 * ft_wps
    record(
        name="text-classification docstrings",
        ours_s=ours_s,
        reference="fastText train_supervised (2 threads)",
        reference_s=ref_s,
        quality={
            "accuracy": accuracy,
            "fasttext_accuracy": ft_accuracy,
            "macro_f1": f1_score(test_y, predicted, average="macro"),
            "fasttext_macro_f1": f1_score(test_y, ft_predicted, average="macro"),
            "words_per_s": round(ours_wps),
            "fasttext_words_per_s": round(ft_wps),
            "words_per_s_ratio": ours_wps / ft_wps,
            "n_train": len(train_x),
            "n_test": len(test_x),
        },
        bar="accuracy >= fastText - 0.01, words/s >= 0.1x fastText",
        met=met,
    )


def _package_coherence(words: list[str], neighbours: dict[str, list[str]], home: dict[str, str]) -> float:
    """Share of the nearest neighbours of package-specific words that belong to the same package."""
    hits = total = 0
    for word in words:
        found = [other for other in neighbours[word] if other in home]
        hits += sum(home[other] == home[word] for other in found)
        total += len(found)
    return hits / max(total, 1)


def test_bench_word2vec_vs_fasttext_skipgram() -> None:
    """word2vec skip-gram against fastText's (subwords off); quality = package coherence of neighbours."""
    import fasttext

    from algorithms.text import tokenize
    from algorithms.word2vec import Word2Vec

    train_x, train_y, _, _ = build_corpus()
    settings = {"epochs": 5, "vector_dim": 100, "window_size": 5, "negative_samples": 5, "min_count": 5}
    n_words = sum(len(tokenize(t)) for t in train_x) * settings["epochs"]
    workdir = Path(tempfile.mkdtemp())
    text_file = workdir / "corpus.txt"
    text_file.write_text("".join(" ".join(tokenize(text)) + "\n" for text in train_x))

    def ours() -> Word2Vec:
        return Word2Vec(mode="skipgram", sampling_threshold=1e-4, learning_rate=0.05, **settings).fit(train_x)

    used = {"subwords": False}

    def reference():
        kwargs = {
            "input": str(text_file),
            "model": "skipgram",
            "dim": settings["vector_dim"],
            "epoch": settings["epochs"],
            "ws": settings["window_size"],
            "neg": settings["negative_samples"],
            "minCount": settings["min_count"],
            "t": 1e-4,
            "lr": 0.05,
            "thread": 2,
            "verbose": 0,
        }
        # fastText-numpy2 0.10.4 often aborts with "Encountered NaN." when subwords are off
        # (minn = maxn = 0) on this corpus; retry, then fall back to its default subwords.
        for _ in range(4):
            try:
                return fasttext.train_unsupervised(**kwargs, minn=0, maxn=0)
            except RuntimeError:
                continue
        used["subwords"] = True
        return fasttext.train_unsupervised(**kwargs)

    ours_s, model, ref_s, ft = alternate(ours, reference, rounds=1, repeats=1)
    # A word belongs to a package when >= 80% of its occurrences (and >= 20 of them) are there.
    counts: dict[str, dict[str, int]] = {}
    for text, label in zip(train_x, train_y, strict=True):
        for token in tokenize(text):
            counts.setdefault(token, {}).setdefault(str(label), 0)
            counts[token][str(label)] += 1
    home = {
        word: max(by, key=by.get)
        for word, by in counts.items()
        if sum(by.values()) >= 20 and max(by.values()) >= 0.8 * sum(by.values())
    }
    words = sorted(w for w in home if w in set(model.vocabulary_.tolist()))[:500]
    ours_nn = {w: [x for x, _ in model.nearest(w, 10)] for w in words}
    ft_nn = {w: [x for _, x in ft.get_nearest_neighbors(w, k=10)] for w in words}
    coherence = _package_coherence(words, ours_nn, home)
    ft_coherence = _package_coherence(words, ft_nn, home)
    record(
        name="word2vec skipgram docstrings",
        ours_s=ours_s,
        reference="fastText train_unsupervised skipgram, "
        + ("with its default subwords (no-subword runs hit NaN)" if used["subwords"] else "no subwords")
        + " (2 threads)",
        reference_s=ref_s,
        quality={
            "package_coherence": coherence,
            "fasttext_package_coherence": ft_coherence,
            "words_per_s": round(n_words / ours_s),
            "fasttext_words_per_s": round(n_words / ref_s),
            "probe_words": len(words),
        },
        bar="(no issue bar) package coherence >= fastText - 0.05",
        met=coherence >= ft_coherence - 0.05,
    )
