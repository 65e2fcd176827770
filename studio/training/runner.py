"""The training loop as it runs inside a Celery worker: claim, load, split, fit, save, finish.

Everything it writes goes through services (conditional status updates, metrics then publish),
so the reconciler and a worker never both decide a job's fate.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connections, transaction

from algorithms import get_algorithm
from studio.datasets.loading import DatasetError, load_images, load_tabular, load_text
from studio.datasets.preprocessing import DEFAULT_MISSING_STRATEGY, Prepared, TabularPreprocessor
from studio.registry import services as registry_services
from studio.training import plots, services
from studio.training.models import JobStatus, TrainingJob
from studio.training.signals import training_job_epoch

logger = logging.getLogger(__name__)
# The runtime clock, a module attribute so tests can move time forward for the runner alone.
clock = time.monotonic


class _Heartbeat:
    """Keeps heartbeat_at fresh while a long epoch runs, so the reconciler does not take a busy
    worker for a dead one. The callback also beats; this covers the time between callbacks."""

    def __init__(self, job_id: UUID, every: float) -> None:
        self.job_id = job_id
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.every > 0:
            self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.job_id}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    if not services.training_job_touch(job_id=self.job_id):
                        return
                except Exception:
                    logger.warning("heartbeat of training job %s failed", self.job_id, exc_info=True)
        finally:
            # Connections are per thread: close this thread's own, or it leaks one per job.
            connections.close_all()


def split_indices(n: int, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) row positions: a seeded shuffle holds out ``fraction``, so a job splits the same way."""
    n_val = round(n * fraction)
    if fraction > 0:
        n_val = max(1, n_val)
    if n - n_val < 1:
        raise ValueError(f"The dataset has only {n} usable row(s): too few to hold out {fraction:.0%} for "
                         "validation. Add rows or set validation_fraction to 0.")
    order = np.random.default_rng(seed).permutation(n)
    return order[n_val:], order[:n_val]


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.6g}" for name, value in metrics.items())


# Train metrics on every row cost as much as training for some algorithms (k-NN searches each row
# against all others); a fixed-size random sample measures them just as well.
TRAIN_EVAL_ROWS = 50_000


def _evaluation_sample(X: np.ndarray, y: Any, *, seed: int) -> tuple[np.ndarray, Any]:
    if X.shape[0] <= TRAIN_EVAL_ROWS:
        return X, y
    rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], TRAIN_EVAL_ROWS, replace=False))
    return X[rows], None if y is None else np.asarray(y)[rows]


def _take(X: Any, index: np.ndarray) -> Any:
    """Rows of an array, or items of a list (texts, per-image boxes), at ``index``."""
    if isinstance(X, np.ndarray):
        return X[index]
    return [X[i] for i in index.tolist()]


def _media_sample(X: Any, y: Any, *, seed: int) -> tuple[Any, Any]:
    """Like _evaluation_sample, for texts (a list) as well as images."""
    if len(X) <= TRAIN_EVAL_ROWS:
        return X, y
    rows = np.sort(np.random.default_rng(seed).choice(len(X), TRAIN_EVAL_ROWS, replace=False))
    return _take(X, rows), None if y is None else _take(y, rows)


class _Run:
    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.started = clock()
        self.last_metrics: dict[str, float] = {}
        self.last_step = 0
        self.stop_message: str | None = None
        self.lost = False

    def log(self, *lines: str) -> None:
        services.job_log(job=self.job, lines=lines)

    # The fit callback: store + publish the epoch, beat, and decide whether to go on.
    def callback(self, step: int, metrics: dict[str, float]) -> bool:
        self.last_step = step
        self.last_metrics = {name: float(value) for name, value in metrics.items()}
        services.job_metrics_record(job=self.job, step=step, metrics=self.last_metrics,
                                    log_lines=[f"epoch {step}: {_metrics_text(self.last_metrics)}"])
        alive, stop_message = services.training_job_heartbeat(job_id=self.job.id)
        if not alive:
            # Someone else (the reconciler) already finished the job: stop spending the worker on it.
            self.lost = True
            return False
        if stop_message:
            self.stop_message = stop_message
            return False
        limit = self.job.max_runtime_seconds
        if limit and clock() - self.started > limit:
            self.stop_message = f"Max runtime of {limit} s exceeded"
            return False
        for _receiver, answer in training_job_epoch.send(sender=TrainingJob, job=self.job, step=step,
                                                         metrics=self.last_metrics):
            if answer:
                self.stop_message = str(answer)
                return False
        return True

    def estimator(self, algo: Any, hyperparameters: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """A fresh estimator, or the model of ``resume_from`` set to continue (with its fit keywords)."""
        source = self.job.resume_from
        if source is None:
            return algo(**hyperparameters), {}
        model = getattr(source, "model", None)
        if model is None or not getattr(algo, "resumable", False):
            why = "it left no model" if model is None else f"{algo.name} cannot resume training"
            self.log(f"Not resuming from job '{source.name}': {why}; training from scratch.")
            return algo(**hyperparameters), {}
        estimator = registry_services.model_load(model=model)
        estimator.set_params(**hyperparameters)
        budget = getattr(algo, "budget_hyperparameter", None)
        until = f" up to {budget} {hyperparameters.get(budget)}" if budget else ""
        self.log(f"Resuming from the model of job '{source.name}'{until}.")
        return estimator, {"resume": True}

    def execute(self) -> None:
        job = self.job
        algo = get_algorithm(job.algorithm)
        hyperparameters = algo.validate_hyperparameters(job.hyperparameters)
        if job.dataset is None:
            raise ValueError("The training dataset was deleted before the job started.")
        self.log(f"Starting {algo.title} job '{job.name}' on {job.worker or 'a worker'} (attempt {job.attempts}).")
        if algo.input in ("text", "image"):
            self._execute_media(algo, hyperparameters)
            return

        # An algorithm without a target must not learn from the dataset's label column either.
        exclude = [job.dataset.target] if not job.target and algo.target != "required" and job.dataset.target else []
        data = load_tabular(dataset=job.dataset, target=job.target, exclude=exclude)
        dropped = f" ({data.n_dropped:,} rows without a target dropped)" if data.n_dropped else ""
        self.log(f"Loaded {data.n_rows:,} rows × {len(data.feature_names)} features from dataset "  # noqa: RUF001
                 f"'{job.dataset.name}'{dropped}.")
        if exclude and exclude[0] in (job.dataset.column_names or []):
            self.log(f"Left out '{exclude[0]}', the dataset's target column: {algo.name} learns from the features "
                     "alone.")

        seed = int(hyperparameters.get("random_state", 0) or 0)
        if job.validation_dataset is not None:
            train_data = data
            val_data = load_tabular(dataset=job.validation_dataset, target=job.target,
                                    feature_columns=list(data.feature_names), categorical=data.categorical)
            self.log(f"Loaded {val_data.n_rows:,} validation rows from dataset '{job.validation_dataset.name}'.")
        elif job.validation_fraction > 0:
            train_idx, val_idx = split_indices(data.n_rows, fraction=job.validation_fraction, seed=seed)
            train_data, val_data = data.take(train_idx), data.take(val_idx)
        else:
            train_data, val_data = data, None

        # Fitted on the training rows only, so validation metrics see unseen values as a model would.
        preprocessor = TabularPreprocessor(missing_values=job.missing_values or DEFAULT_MISSING_STRATEGY)
        train = preprocessor.fit(train_data)
        if train.notes:
            self.log(*train.notes)
        val = None
        if val_data is not None:
            val = preprocessor.transform(val_data, channel="validation")
            if val.notes:
                self.log(*val.notes)
            if val.X.shape[0] == 0:
                self.log("No validation rows are left: training without a validation set.")
                val = None
        X_train, y_train = train.X, train.y
        X_val, y_val = (val.X, val.y) if val is not None else (None, None)
        if algo.target == "none":
            y_train = y_val = None

        task = hyperparameters.get("predictor_type")
        task_text = f" ({task})" if task and task != "auto" else ""
        val_text = f"validating on {X_val.shape[0]:,}" if X_val is not None else "without a validation set"
        self.log(f"Training {algo.name}{task_text} on {X_train.shape[0]:,} rows, {val_text}.",
                 "Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in hyperparameters.items()))

        estimator, fit_kwargs = self.estimator(algo, hyperparameters)
        fit_kwargs["callback"] = self.callback
        if X_val is not None:
            fit_kwargs.update(X_val=X_val, y_val=y_val)
        estimator.fit(X_train, y_train, **fit_kwargs)
        if not self._after_fit(estimator):
            return

        final = dict(self.last_metrics)
        X_eval, y_eval = _evaluation_sample(X_train, y_train, seed=seed)
        if X_eval.shape[0] < X_train.shape[0]:
            self.log(f"Train metrics are measured on a random sample of {X_eval.shape[0]:,} training rows.")
        final.update(self._evaluate(estimator, X_eval, y_eval, "train"))
        if X_val is not None:
            final.update(self._evaluate(estimator, X_val, y_val, "validation"))
        final = {name: float(value) for name, value in final.items() if services._finite(value)}
        self.log(f"Final metrics: {_metrics_text(final)}")
        plots = self._plots(estimator, train=train, val=val, target_kind=algo.target, seed=seed)
        self._save(estimator, preprocessor, final, hyperparameters, plots)

    # --- text and image jobs: no tabular preprocessing, the loaders hand over model-ready inputs -----

    def _load_media(self, algo: Any, dataset: Any) -> tuple[Any, Any]:
        """(inputs, labels) of a text or image dataset: a list of str, or uint8 images (N, H, W, 3).

        Labels are class names (an array), reference texts, or for detection one list of box dicts per image.
        """
        if algo.input == "text":
            # Optional labels (a summarizer's reference summaries) are read only when the job asked for them.
            labelled = algo.target == "required" or (algo.target == "optional" and bool(self.job.target))
            data = load_text(dataset=dataset, target="label" if labelled else "")
            dropped = f" ({data.n_dropped:,} without a label dropped)" if data.n_dropped else ""
            labels = ""
            if data.y is not None:
                labels = f" in {len(set(data.y.tolist())):,} classes" if algo.target == "required" else " with labels"
            self.log(f"Loaded {len(data.texts):,} texts{labels} from dataset '{dataset.name}'{dropped}.")
            return data.texts, data.y
        data = load_images(dataset=dataset)
        n, h, w = data.X.shape[:3]
        self.log(f"Loaded {n:,} images {w}×{h} from dataset '{dataset.name}' "  # noqa: RUF001
                 f"({data.task}, {len(data.classes):,} class(es)).")
        wants_boxes = "detection" in algo.task  # an object detector learns boxes, every other image model classes
        if data.task == "detection":
            if not wants_boxes:
                # Detection datasets carry boxes, not one class per image: a classifier has nothing to learn.
                raise DatasetError(f"{algo.name} needs one class per image, but dataset '{dataset.name}' holds "
                                   "detection boxes: upload a ZIP of class folders.")
            boxes = [[{"label": str(label), "x1": float(b[0]), "y1": float(b[1]), "x2": float(b[2]),
                       "y2": float(b[3])} for b, label in zip(coords.tolist(), labels.tolist(), strict=True)]
                     for coords, labels in zip(data.boxes or [], data.box_labels or [], strict=True)]
            return data.X, boxes
        if wants_boxes:
            raise DatasetError(f"{algo.name} needs boxes, but dataset '{dataset.name}' is a ZIP of class folders: "
                               "upload images with an annotations.json.")
        return data.X, data.y

    def _execute_media(self, algo: Any, hyperparameters: dict[str, Any]) -> None:
        job = self.job
        X, y = self._load_media(algo, job.dataset)
        seed = int(hyperparameters.get("random_state", 0) or 0)
        X_val: Any = None
        y_val: Any = None
        if job.validation_dataset is not None:
            X_train, y_train = X, y
            X_val, y_val = self._load_media(algo, job.validation_dataset)
        elif job.validation_fraction > 0:
            # The same seeded split as tabular jobs, so a rerun holds out the same texts or images.
            train_idx, val_idx = split_indices(len(X), fraction=job.validation_fraction, seed=seed)
            X_train, X_val = _take(X, train_idx), _take(X, val_idx)
            y_train = None if y is None else _take(y, train_idx)
            y_val = None if y is None else _take(y, val_idx)
        else:
            X_train, y_train = X, y
        if algo.target == "none":
            y_train = y_val = None

        unit = "texts" if algo.input == "text" else "images"
        val_text = f"validating on {len(X_val):,}" if X_val is not None else "without a validation set"
        self.log(f"Training {algo.name} on {len(X_train):,} {unit}, {val_text}.",
                 "Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in hyperparameters.items()))
        estimator, fit_kwargs = self.estimator(algo, hyperparameters)
        fit_kwargs["callback"] = self.callback
        if X_val is not None:
            fit_kwargs.update(X_val=X_val, y_val=y_val)
        estimator.fit(X_train, y_train, **fit_kwargs)
        if not self._after_fit(estimator):
            return

        final = dict(self.last_metrics)
        X_eval, y_eval = _media_sample(X_train, y_train, seed=seed)
        if len(X_eval) < len(X_train):
            self.log(f"Train metrics are measured on a random sample of {len(X_eval):,} training {unit}.")
        final.update(self._evaluate(estimator, X_eval, y_eval, "train"))
        if X_val is not None:
            final.update(self._evaluate(estimator, X_val, y_val, "validation"))
        final = {name: float(value) for name, value in final.items() if services._finite(value)}
        self.log(f"Final metrics: {_metrics_text(final)}")
        source, labels, channel = (X_val, y_val, "validation") if X_val is not None else (X_train, y_train, "training")
        result = self._draw(lambda: plots.prediction_plots(estimator, source, labels, channel=channel, seed=seed),
                            channel=channel)
        self._save(estimator, None, final, hyperparameters, result)

    def _after_fit(self, estimator: Any) -> bool:
        """Log how fitting went; False when the job is no longer ours or was stopped (and is finished so)."""
        if self.lost:
            logger.warning("training job %s was finished by someone else while it ran", self.job.id)
            return False
        summary = self._fit_summary(estimator)
        if summary:
            self.log(summary)
        if self.stop_message:
            self.log(f"{self.stop_message} after epoch {self.last_step}.")
            services.training_job_finish(job=self.job, status=JobStatus.STOPPED, status_message=self.stop_message,
                                         final_metrics=self.last_metrics)
            return False
        return True

    def _draw(self, draw: Any, *, channel: str) -> list[dict[str, Any]]:
        """Run a plot function; a plot error is logged, never the job's failure."""
        try:
            result = draw()
        except Exception as exc:
            logger.warning("result plots of training job %s failed", self.job.id, exc_info=True)
            self.log(f"Could not draw the result plots: {type(exc).__name__}: {exc}")
            return []
        if result:
            self.log(f"Drew {len(result)} result plot(s) on {channel} rows: "
                     + ", ".join(p["title"].lower() for p in result) + ".")
        return result

    def _plots(self, estimator: Any, *, train: Prepared, val: Prepared | None, target_kind: str,
               seed: int) -> list[dict[str, Any]]:
        """Result plots on the validation rows (training rows without them); never fails the job."""
        source, channel = (val, "validation") if val is not None else (train, "training")
        y = None if target_kind == "none" else source.y
        return self._draw(lambda: plots.result_plots(estimator, source.X, y, channel=channel, rows=source.rows,
                                                     y_train=train.y, train_rows=train.rows, seed=seed),
                          channel=channel)

    @staticmethod
    def _fit_summary(estimator: Any) -> str:
        epochs = getattr(estimator, "n_epochs_", None)
        if epochs is None:
            return ""
        text = f"Trained {epochs} epoch(s)"
        task = getattr(estimator, "predictor_type_", None)
        if task:
            text += f" as {task}"
        best, monitor = getattr(estimator, "best_epoch_", None), getattr(estimator, "monitor_", None)
        if best is not None and monitor:
            text += f"; kept epoch {best} (best {monitor} {getattr(estimator, 'best_loss_', float('nan')):.6g})"
        reason = getattr(estimator, "stop_reason_", None)
        if reason == "early_stopping":
            text += "; stopped early: the loss stopped improving"
        elif reason == "diverged":
            text += "; stopped: training diverged, lower learning_rate"
        return text + "."

    @staticmethod
    def _evaluate(estimator: Any, X: np.ndarray, y: Any, channel: str) -> dict[str, float]:
        try:
            return estimator.evaluate(X, y, channel=channel)
        except NotImplementedError:
            return {}

    def _save(self, estimator: Any, preprocessor: TabularPreprocessor | None, final: dict[str, float],
              hyperparameters: dict[str, Any], result_plots: list[dict[str, Any]]) -> None:
        job = self.job
        model_id = uuid.uuid4()
        with tempfile.TemporaryDirectory() as tmp:
            estimator.save(Path(tmp))
            # Beside manifest.json and arrays.npz: how request records become the model's features.
            # Text and image models take their inputs as they are, so they have no preprocessing.json.
            if preprocessor is not None:
                preprocessor.save(Path(tmp))
            artifacts = registry_services.model_artifacts_store(project=job.project, model_id=model_id,
                                                                directory=Path(tmp))
        files = ", ".join(Path(name).name for name in artifacts.files)
        self.log(f"Saved model ({_size_text(artifacts.size_bytes)}): {files}.")
        try:
            with transaction.atomic():
                registry_services.model_create(
                    project=job.project, model_id=model_id, name=job.name, algorithm=job.algorithm,
                    artifacts=artifacts, training_job=job, hyperparameters=hyperparameters, metrics=final,
                    feature_names=preprocessor.input_names if preprocessor is not None else [],
                    target=job.target, created_by=job.created_by,
                )
                if not services.training_job_finish(job=job, status=JobStatus.COMPLETED,
                                                    status_message="Completed", final_metrics=final,
                                                    result_plots=result_plots):
                    raise _LostRace
        except _LostRace:
            registry_services.model_artifacts_discard(artifacts=artifacts)
            logger.warning("training job %s finished elsewhere; discarded its model", job.id)
        except Exception:
            registry_services.model_artifacts_discard(artifacts=artifacts)
            raise


class _LostRace(Exception):
    """The job stopped being ours (reconciled) between fit and save: undo the model."""


def training_job_run(*, job_id: UUID | str, worker: str) -> str:
    """Run one job end to end. Idempotent: only the caller that claims the pending job runs it.

    Returns the job's final status, or "skipped" when there was nothing to claim.
    """
    job = services.training_job_claim(job_id=job_id, worker=worker)
    if job is None:
        logger.info("training job %s is not pending; nothing to do", job_id)
        return "skipped"
    run = _Run(job)
    with _Heartbeat(job.id, float(settings.STUDIO_HEARTBEAT_SECONDS)):
        try:
            run.execute()
        except ValueError as exc:
            # Bad data or parameters (DatasetError and HyperparameterError are ValueErrors): say it in words.
            _fail(run, str(exc) or type(exc).__name__)
        except Exception as exc:
            logger.exception("training job %s failed with an unexpected error", job.id)
            _fail(run, f"Internal error: {type(exc).__name__}: {exc}")
    job.refresh_from_db()
    return job.status


def _fail(run: _Run, reason: str) -> None:
    try:
        run.log(f"Failed: {reason}")
    except Exception:
        logger.warning("could not write the failure log line of job %s", run.job.id, exc_info=True)
    services.training_job_finish(job=run.job, status=JobStatus.FAILED, status_message="Failed",
                                 failure_reason=reason, final_metrics=run.last_metrics or None)
