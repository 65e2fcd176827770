"""Benchmark bookkeeping: time ours and a reference in the same run, keep the ratio and quality.

Benchmarks never assert on time inside `make test`; `make bench` runs them, prints a table and
writes bench-results.json (a list of {"name", "ours_s", "reference", "reference_s", "ratio",
"quality", "bar", "met"}).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS: list[BenchResult] = []
OUTPUT = Path(__file__).resolve().parents[2] / "bench-results.json"


@dataclass
class BenchResult:
    name: str
    ours_s: float
    reference: str
    reference_s: float
    ratio: float
    quality: dict[str, Any] = field(default_factory=dict)
    bar: str = ""
    met: bool | None = None


def best_time(fn: Callable[[], Any], *, repeats: int = 3) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls (the least disturbed by the machine) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def alternate(
    ours: Callable[[], Any], reference: Callable[[], Any], *, rounds: int, repeats: int
) -> tuple[float, Any, float, Any]:
    """Best time of each over ``rounds`` alternating rounds of ``repeats`` calls.

    Ours and the reference alternate, so a busy moment of the machine hits both.

    Returns
    -------
    tuple
        ``(ours_s, ours_result, reference_s, reference_result)``, results from the last calls.
    """
    ours_s = reference_s = float("inf")
    ours_result = reference_result = None
    for _ in range(rounds):
        seconds, ours_result = best_time(ours, repeats=repeats)
        ours_s = min(ours_s, seconds)
        seconds, reference_result = best_time(reference, repeats=repeats)
        reference_s = min(reference_s, seconds)
    return ours_s, ours_result, reference_s, reference_result


def record(*, name: str, ours_s: float, reference: str, reference_s: float, quality: dict[str, Any],
           bar: str, met: bool) -> BenchResult:
    result = BenchResult(name=name, ours_s=round(ours_s, 4), reference=reference,
                         reference_s=round(reference_s, 4), ratio=round(ours_s / reference_s, 3),
                         quality={k: _plain(v) for k, v in quality.items()}, bar=bar, met=bool(met))
    RESULTS.append(result)
    print(f"\n{name}: ours {ours_s:.3f}s vs {reference} {reference_s:.3f}s -> ratio {result.ratio:.2f} "
          f"| {result.quality} | bar: {bar} | {'MET' if met else 'NOT MET'}")
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def write_results() -> None:
    if not RESULTS:
        return
    OUTPUT.write_text(json.dumps([asdict(r) for r in RESULTS], indent=2) + "\n")
    width = max(len(r.name) for r in RESULTS)
    print("\n\nbenchmark".ljust(width + 2) + "  ours_s  ref_s  ratio  met  quality")
    for r in RESULTS:
        print(f"{r.name.ljust(width)}  {r.ours_s:6.3f}  {r.reference_s:5.3f}  {r.ratio:5.2f}  "
              f"{'yes' if r.met else 'NO '}  {r.quality}")
    print(f"\nwritten to {OUTPUT}")
