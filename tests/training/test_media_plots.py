"""Result plots of text and image models from real tiny fitted estimators: word2vec, image classifier
mistakes, detector boxes and per-class AP, summaries. Bounded, JSON-safe, and rendered on the job page."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from algorithms import UnknownAlgorithm, get_algorithm
from studio.training import plots


def algorithm(name: str):
    try:
        return get_algorithm(name)
    except UnknownAlgorithm:
        pytest.skip(f"{name} is not registered yet")


def by_id(result: list[dict]) -> dict[str, dict]:
    json.dumps(result, allow_nan=False)
    return {p["id"]: p for p in result}


def decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def sentences(n: int = 200, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    groups = [["cat", "dog", "mouse", "horse"], ["red", "blue", "green", "yellow"], ["run", "jump", "swim", "fly"]]
    filler = ["the", "a", "and", "very", "is"]
    out = []
    for i in range(n):
        group = groups[i % 3]
        out.append(" ".join([*rng.choice(group, size=4), *rng.choice(filler, size=2)]))
    return out


def test_word2vec_gets_an_embedding_map_and_a_nearest_words_table():
    Word2Vec = algorithm("word2vec")
    model = Word2Vec(epochs=2, vector_dim=8, random_state=0).fit(sentences())
    result = by_id(plots.prediction_plots(model, None, None, channel="validation"))
    assert list(result) == ["embedding_map", "nearest_words"]
    trace = result["embedding_map"]["figure"]["data"][0]
    n = min(plots.MAX_EMBEDDING_WORDS, model.vocabulary_.size)
    assert trace["text"] == model.vocabulary_[:n].tolist() and len(trace["x"]) == len(trace["y"]) == n
    table = result["nearest_words"]
    assert table["kind"] == "table" and table["columns"] == ["word", "#1", "#2", "#3", "#4", "#5"]
    assert [row[0] for row in table["rows"]] == model.vocabulary_[:plots.NEAREST_QUERIES].tolist()
    first = table["rows"][0]
    expected = model.nearest(first[0], k=5)
    assert first[1:] == [f"{w} ({s:.3f})" for w, s in expected]
    assert all(result[k]["note"] for k in result)


def test_word2vec_map_is_bounded_to_the_most_frequent_words():
    Word2Vec = algorithm("word2vec")
    rng = np.random.default_rng(1)
    texts = [" ".join(f"w{v}" for v in rng.integers(0, 500, size=20)) for _ in range(300)]
    model = Word2Vec(epochs=1, vector_dim=4, random_state=0).fit(texts)
    assert model.vocabulary_.size > plots.MAX_EMBEDDING_WORDS
    trace = by_id(plots.prediction_plots(model, None, None))["embedding_map"]["figure"]["data"][0]
    assert len(trace["x"]) == plots.MAX_EMBEDDING_WORDS


def test_image_classifier_shows_its_most_confident_mistakes_as_inline_pngs():
    ImageClassification = algorithm("image-classification")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(40, 8, 8, 3), dtype=np.uint8)
    y = np.array(["a", "b"] * 20)  # noise: the model is bound to get some wrong
    model = ImageClassification(epochs=1, width=4, num_layers=1, mini_batch_size=10).fit(X, y)
    result = by_id(plots.prediction_plots(model, X, y, channel="validation"))
    assert {"confusion_matrix", "roc", "misclassified"} <= set(result)
    grid = result["misclassified"]
    assert grid["kind"] == "images" and 1 <= len(grid["images"]) <= plots.MAX_MISCLASSIFIED
    predicted = model.predict(X)
    n_wrong = int((predicted != y).sum())
    assert len(grid["images"]) == min(n_wrong, plots.MAX_MISCLASSIFIED) and f"{n_wrong:,} misclassified" in grid["note"]
    for image in grid["images"]:
        picture = decode(image["src"])
        assert picture.format == "PNG" and max(picture.size) <= plots.THUMBNAIL
        true, guess = image["caption"].removeprefix("true ").split(" · predicted ")
        assert true != guess.split(" (")[0] and guess.endswith("%)")


def test_png_data_uri_draws_boxes_and_stays_small():
    image = np.full((64, 48, 3), 100, dtype=np.uint8)
    uri = plots.png_data_uri(image, boxes=[((4, 4, 20, 20), (255, 0, 0))])
    picture = decode(uri).convert("RGB")
    assert plots.THUMBNAIL == 96 and picture.size == (72, 96)  # longest side 96, aspect kept
    assert picture.getpixel((6, 15)) == (255, 0, 0)  # the box outline, scaled by 1.5
    assert picture.getpixel((50, 80)) == (100, 100, 100)
    big = np.random.default_rng(0).integers(0, 255, size=(224, 224, 3), dtype=np.uint8)
    assert len(plots.png_data_uri(big)) < 40_000  # noise, the worst case for PNG: still small


def squares(n: int = 24, size: int = 16, seed: int = 0) -> tuple[np.ndarray, list[list[dict]]]:
    rng = np.random.default_rng(seed)
    images = np.clip(90 + rng.normal(scale=15, size=(n, size, size, 3)), 0, 255).astype(np.uint8)
    boxes = []
    for i in range(n):
        side = int(rng.integers(5, 9))
        x, y = (int(v) for v in rng.integers(0, size - side, size=2))
        images[i, y:y + side, x:x + side] = (230, 30, 30)
        boxes.append([{"label": "square", "x1": x, "y1": y, "x2": x + side, "y2": y + side}])
    return images, boxes


def test_detector_draws_boxes_on_validation_images_and_per_class_ap():
    ObjectDetection = algorithm("object-detection")
    X, boxes = squares()
    model = ObjectDetection(epochs=2, mini_batch_size=8, base_filters=4).fit(X, boxes)
    result = by_id(plots.prediction_plots(model, X, boxes, channel="validation"))
    assert list(result) == ["detections", "class_ap"]
    grid = result["detections"]
    assert grid["kind"] == "images" and len(grid["images"]) == plots.MAX_DETECTION_IMAGES
    assert all(decode(i["src"]).format == "PNG" and i["caption"].endswith("1 true") for i in grid["images"])
    bars = result["class_ap"]["figure"]["data"][0]
    assert bars["x"] == ["square"] and 0 <= bars["y"][0] <= 1 and "mAP@0.5" in result["class_ap"]["note"]
    # Without true boxes there is nothing to score: the pictures only.
    assert list(by_id(plots.prediction_plots(model, X[:3], None))) == ["detections"]


def test_summarizer_lists_three_documents_with_rouge():
    Summarization = algorithm("summarization")
    documents = [f"The story {i} was big news today. Others said it was odd. " + "Filler words here. " * 30
                 for i in range(5)]
    references = [f"The story {i} was big news today." for i in range(5)]
    model = Summarization().fit(documents, references)
    table = by_id(plots.prediction_plots(model, documents, np.array(references)))["summaries"]
    assert table["kind"] == "table" and table["columns"] == ["document", "summary", "ROUGE-1"]
    assert len(table["rows"]) == plots.SUMMARY_DOCUMENTS
    document, summary, rouge = table["rows"][0]
    assert len(document) <= plots.DOCUMENT_CHARS + 1 and document.endswith("…")
    assert summary == model.predict(documents[:1])[0] and 0 <= rouge <= 1
    unlabelled = by_id(plots.prediction_plots(model, documents, None))["summaries"]
    assert unlabelled["columns"] == ["document", "summary"] and len(unlabelled["rows"][0]) == 2
