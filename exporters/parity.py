"""Parity between two TensorModels (reference vs candidate) on seeded random and recorded inputs, with a gate.

Generic over the TensorModel interface: PyTorch vs ONNX Runtime, ONNX Runtime vs TensorRT, for policies and vision
encoders alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engines.manifest import ParityResult
from engines.runtime import TensorModel, TensorSpec


class ParityError(AssertionError):
    pass


@dataclass(frozen=True)
class ParityReport:
    reference: str
    candidate: str
    tolerance: float
    max_abs_diff_random: float
    random_samples: int
    max_abs_diff_recorded: float | None = None
    recorded_samples: int = 0
    worst: str = ""  # where the largest difference was seen

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_random, self.max_abs_diff_recorded or 0.0)

    @property
    def passed(self) -> bool:
        return bool(self.max_abs_diff <= self.tolerance)

    def __str__(self) -> str:
        rec = (
            f", recorded {self.max_abs_diff_recorded:.3g} over {self.recorded_samples}" if self.recorded_samples else ""
        )
        return (
            f"parity {self.candidate} vs {self.reference}: max |diff| {self.max_abs_diff:.3g} "
            f"(random {self.max_abs_diff_random:.3g} over {self.random_samples}{rec}; worst at {self.worst}) "
            f"{'≤' if self.passed else '>'} tolerance {self.tolerance:g}"
        )

    def gate(self) -> ParityReport:
        if not self.passed:
            raise ParityError(str(self))
        return self

    def to_manifest(self) -> ParityResult:
        return ParityResult(
            reference=self.reference,
            candidate=self.candidate,
            max_abs_diff=self.max_abs_diff,
            tolerance=self.tolerance,
            passed=self.passed,
            random_samples=self.random_samples,
            recorded_samples=self.recorded_samples,
            max_abs_diff_random=self.max_abs_diff_random,
            max_abs_diff_recorded=self.max_abs_diff_recorded,
        )


def _concrete(spec: TensorSpec, batch: int) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else batch for d in spec.shape)


def random_feeds(
    specs: Sequence[TensorSpec], n: int, seed: int = 0, batch: int = 1, scale: float = 1.0
) -> list[dict[str, np.ndarray]]:
    """n feeds of N(0, scale²) floats (integers in [0, 10)); dynamic dims become `batch`."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(n):
        feed = {}
        for s in specs:
            shape = _concrete(s, batch)
            if np.issubdtype(s.dtype, np.floating):
                feed[s.name] = (rng.standard_normal(shape) * scale).astype(s.dtype)
            else:
                feed[s.name] = rng.integers(0, 10, shape).astype(s.dtype)
        feeds.append(feed)
    return feeds


def feeds_from_rows(name: str, rows: np.ndarray, dtype=np.float32) -> list[dict[str, np.ndarray]]:
    """(N, ...) recorded inputs → N single-sample feeds of shape (1, ...)."""
    rows = np.asarray(rows, dtype=dtype)
    return [{name: rows[i : i + 1]} for i in range(len(rows))]


def max_abs_diff(
    reference: TensorModel, candidate: TensorModel, feeds: Iterable[dict[str, np.ndarray]]
) -> tuple[float, str, int]:
    """(max |ref − cand| over all outputs and feeds, where it was, number of feeds). Non-finite → inf."""
    worst, where, n = 0.0, "", 0
    for i, feed in enumerate(feeds):
        n += 1
        ref, cand = reference.run(feed), candidate.run(feed)
        for name, r in ref.items():
            if name not in cand:
                raise ParityError(f"{candidate.backend}: output {name!r} missing (has {sorted(cand)})")
            r, c = np.asarray(r, np.float64), np.asarray(cand[name], np.float64)
            if r.shape != c.shape:
                raise ParityError(
                    f"output {name!r}: {reference.backend} shape {r.shape}, {candidate.backend} shape {c.shape}"
                )
            d = np.abs(r - c)
            m = float(d.max()) if d.size and np.isfinite(d).all() else (np.inf if d.size else 0.0)
            if m > worst or not where:
                worst, where = m, f"sample {i} output {name!r}"
    return worst, where, n


def check_parity(
    reference: TensorModel,
    candidate: TensorModel,
    *,
    n_random: int = 64,
    seed: int = 0,
    recorded: np.ndarray | Sequence[dict[str, np.ndarray]] | None = None,
    tolerance: float = 1e-4,
    batch: int = 1,
    scale: float = 1.0,
) -> ParityReport:
    """Compare on n_random seeded random feeds and on recorded inputs ((N, ...) rows for single-input models, or a
    list of feeds). Returns the report; call `.gate()` to raise ParityError when it fails."""
    rand_diff, rand_where, n_rand = max_abs_diff(
        reference, candidate, random_feeds(reference.inputs, n_random, seed, batch, scale)
    )
    rec_diff, rec_where, n_rec = None, "", 0
    if recorded is not None:
        if isinstance(recorded, np.ndarray):
            if len(reference.inputs) != 1:
                raise ValueError("recorded rows need a single-input model; pass a list of feeds instead")
            recorded = feeds_from_rows(reference.inputs[0].name, recorded, reference.inputs[0].dtype)
        rec_diff, rec_where, n_rec = max_abs_diff(reference, candidate, recorded)
    worst = f"recorded {rec_where}" if rec_diff is not None and rec_diff > rand_diff else f"random {rand_where}"
    return ParityReport(reference.backend, candidate.backend, tolerance, rand_diff, n_rand, rec_diff, n_rec, worst)


class RecordingModel:
    """Wraps a TensorModel and keeps a copy of every input fed to it (to record observations from a sim run)."""

    def __init__(self, model: TensorModel):
        self.model = model
        self.backend, self.inputs, self.outputs = model.backend, model.inputs, model.outputs
        self.records: list[dict[str, np.ndarray]] = []

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.records.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.model.run(feeds)

    def stacked(self, name: str) -> np.ndarray:
        return np.concatenate([r[name] for r in self.records]) if self.records else np.empty((0,))
