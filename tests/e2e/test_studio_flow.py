"""A new user's first session in a real browser: sign up, team, project, upload, train, watch it live."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import run_in_browser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS", "")) if os.environ.get("STUDIO_SCREENSHOTS") else None


def houses_csv(path: Path, n: int = 20_000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    price = x @ np.array([3.0, -2.0, 0.5, 1.5, 0.0, 4.0]) + 100 + rng.normal(scale=0.5, size=n)
    header = "rooms,age,distance,schools,noise,area,price"
    np.savetxt(path, np.column_stack([x, price]), delimiter=",", header=header, comments="", fmt="%.5f")
    return path


def shot(page, name: str, *, full_page: bool = False) -> None:
    """Screenshots for people (the README's comes from here) when STUDIO_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def new_project(page, base: str, *, username: str, team: str, project: str) -> str:
    """Sign up, create a team and a project in it through the pages; return the project's URL."""
    page.set_default_timeout(20_000)
    page.goto(f"{base}/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password", "correct-horse-battery-staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert "not in a team yet" in page.content()
    page.click("a.btn:has-text('Create a team')")
    page.fill("#id_name", team)
    page.click("button:has-text('Create team')")
    page.wait_for_url(re.compile(r".*/teams/[\w-]+/$"))
    page.fill("#id_project_name", project)
    page.click("button:has-text('Create project')")
    page.wait_for_url(re.compile(r".*/projects/[0-9a-f-]+/$"))
    return page.url


def upload(page, path: Path, **fields: str) -> str:
    """Upload a file from the project overview's "Upload data"; return the new dataset's id."""
    page.click("a.btn:has-text('Upload data')")
    page.set_input_files("#id_file", str(path))
    for field, value in fields.items():
        page.fill(f"#id_{field}", value)
    page.click("[data-upload-submit]")
    page.wait_for_url(re.compile(r".*/data/[0-9a-f-]+/$"))
    return page.url.rstrip("/").rsplit("/", 1)[1]


def wait_until_completed_with_results(page) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-status]').textContent.trim() === 'completed'",
        timeout=120_000,
    )
    page.wait_for_function("() => window.studioChartPoints > 0")
    page.wait_for_selector("[data-testid=model-link]")
    assert "validation:" in page.inner_text("[data-testid=final-metrics]")
    page.wait_for_function("() => window.studioResultPlots >= 1", timeout=30_000)


def test_it_takes_a_new_user_from_sign_up_to_a_live_training_run(browse, tmp_path):
    csv_path = houses_csv(tmp_path / "houses.csv")
    run_in_browser(browse, tmp_path, lambda page, base: first_session(page, base, csv_path))


def first_session(page, base: str, csv_path: Path) -> None:
    project_url = new_project(page, base, username="ada", team="Acme ML", project="House prices")
    upload(page, csv_path, target="price")
    assert page.inner_text("[data-testid=rows]").replace(",", "") == "20000"
    page.wait_for_selector("[data-testid=chart] .main-svg")  # plotly drew the histograms
    shot(page, "dataset")

    page.click("text=Train on this dataset")
    page.wait_for_selector("#id_target option[value=price]", state="attached")
    page.select_option("#id_target", "price")
    # Small batches make the run last long enough to watch several epochs arrive.
    page.fill("#id_hp_epochs", "25")
    page.fill("#id_hp_mini_batch_size", "4")
    page.fill("#id_hp_early_stopping_patience", "100")
    # A second tab on the job list: it must show the new job and its outcome without a reload.
    job_list = page.context.new_page()
    job_list.goto(project_url + "training/")
    job_list.wait_for_selector("text=No training jobs yet")
    page.click("[data-testid=start-training]")
    page.wait_for_url(re.compile(r".*/training/[0-9a-f-]+/$"))

    # The chart receives points while the job is still running: streamed, not loaded at the end.
    page.wait_for_function(
        "() => window.studioChartPoints > 2 && "
        "document.querySelector('[data-testid=job-status]').textContent.trim() === 'running'",
        timeout=60_000,
    )
    shot(page, "training-live")
    seen_while_running = page.evaluate("window.studioChartPoints")

    # Reloading mid-run shows the history again and carries on.
    page.reload()
    page.wait_for_function(f"() => window.studioChartPoints >= {seen_while_running}", timeout=30_000)

    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-status]').textContent.trim() === 'completed'",
        timeout=120_000,
    )
    page.wait_for_selector("[data-testid=model-link]")
    # Result plots for a regressor (predicted vs actual, residuals) are drawn once it completes.
    page.wait_for_function("() => window.studioResultPlots >= 2", timeout=30_000)
    job_list.wait_for_selector("[data-testid=training-jobs] .badge.completed", timeout=30_000)
    points = page.evaluate("window.studioChartPoints")
    assert points > seen_while_running
    assert "validation:rmse" in page.inner_text("[data-testid=final-metrics]")
    shot(page, "training-done", full_page=True)

    page.click("[data-testid=model-link]")
    page.wait_for_url(re.compile(r".*/models/[0-9a-f-]+/$"))
    assert "linear-learner" in page.content()


def shapes_zip(path: Path, per_class: int = 60, size: int = 16, seed: int = 0) -> Path:
    """A ZIP of class folders: bright squares on the left half vs on the right half."""
    import io
    import zipfile

    from PIL import Image

    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        for label, columns in (("left", slice(0, size // 2)), ("right", slice(size // 2, size))):
            for i in range(per_class):
                pixels = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
                pixels[:, columns] += 150
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="PNG")
                archive.writestr(f"{label}/{i}.png", buffer.getvalue())
    return path


def test_it_trains_an_image_classifier_from_the_pages(browse, tmp_path):
    zip_path = shapes_zip(tmp_path / "shapes.zip")
    run_in_browser(browse, tmp_path, lambda page, base: image_session(page, base, zip_path))


def image_session(page, base: str, zip_path: Path) -> None:
    project_url = new_project(page, base, username="iris", team="Vision", project="Shapes")
    dataset_id = upload(page, zip_path, image_size="16")
    assert "120" in page.content()  # images counted
    page.wait_for_selector("img")  # the gallery shows thumbnails
    page.goto(f"{project_url}training/new/?dataset={dataset_id}&algorithm=image-classification")
    page.fill("#id_hp_epochs", "6")
    page.fill("#id_hp_width", "8")
    page.click("[data-testid=start-training]")
    page.wait_for_url(re.compile(r".*/training/[0-9a-f-]+/$"))
    wait_until_completed_with_results(page)
    shot(page, "image-job", full_page=True)


def reviews_jsonl(path: Path, n: int = 200, seed: int = 0) -> Path:
    """Short reviews whose label is given away by a few words, as real sentiment data would be."""
    import json

    rng = np.random.default_rng(seed)
    good, bad, filler = ["great", "lovely", "superb"], ["awful", "broken", "terrible"], ["the", "item", "was", "quite"]
    with path.open("w") as out:
        for i in range(n):
            label = "pos" if i % 2 else "neg"
            words = list(rng.choice(filler, 4)) + list(rng.choice(good if label == "pos" else bad, 2))
            rng.shuffle(words)
            out.write(json.dumps({"text": " ".join(words), "label": label}) + "\n")
    return path


def test_it_trains_a_text_classifier_from_the_pages(browse, tmp_path):
    jsonl = reviews_jsonl(tmp_path / "reviews.jsonl")
    run_in_browser(browse, tmp_path, lambda page, base: text_session(page, base, jsonl))


def text_session(page, base: str, jsonl: Path) -> None:
    project_url = new_project(page, base, username="tess", team="Words", project="Reviews")
    dataset_id = upload(page, jsonl)
    assert "text" in page.inner_text("dl.kv")
    page.goto(f"{project_url}training/new/?dataset={dataset_id}&algorithm=text-classification")
    page.fill("#id_hp_epochs", "5")
    page.click("[data-testid=start-training]")
    page.wait_for_url(re.compile(r".*/training/[0-9a-f-]+/$"))
    wait_until_completed_with_results(page)
