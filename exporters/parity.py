"""Parity between two TensorModels (reference vs candidate) on seeded random and recorded inputs, with a gate.

Generic over the TensorModel interface: PyTorch vs ONNX Runtime, ONNX Runtime vs TensorRT, for policies and vision
encoders alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

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
    relative: bool = False  # gate max |diff| / max |reference| instead of max |diff|
    reference_max_abs: float = 0.0  # largest |reference output| seen

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_random, self.max_abs_diff_recorded or 0.0)

    @property
    def gated_value(self) -> float:
        """What the tolerance applies to: max |diff|, or max |diff| / max |reference| (relative)."""
        if not self.relative:
            return self.max_abs_diff
        return self.max_abs_diff / self.reference_max_abs if self.reference_max_abs > 0 else self.max_abs_diff

    @property
    def passed(self) -> bool:
        return bool(self.gated_value <= self.tolerance)

    def __str__(self) -> str:
        rec = (
            f", recorded {self.max_abs_diff_recorded:.3g} over {self.recorded_samples}" if self.recorded_samples else ""
        )
        rel = f", relative {self.gated_value:.3g} of max |ref| {self.reference_max_abs:.3g}" if self.relative else ""
        return (
            f"parity {self.candidate} vs {self.reference}: max |diff| {self.max_abs_diff:.3g}{rel} "
            f"(random {self.max_abs_diff_random:.3g} over {self.random_samples}{rec}; worst at {self.worst}) "
            f"{'≤' if self.passed else '>'} tolerance {self.tolerance:g}"
        )

    @staticmethod
    def merge(reports: Sequence[ParityReport]) -> ParityReport:
        """One report over several runs (e.g. batch sizes): the worst difference, every sample counted."""
        worst = max(reports, key=lambda r: r.gated_value)
        return replace(
            worst,
            random_samples=sum(r.random_samples for r in reports),
            recorded_samples=sum(r.recorded_samples for r in reports),
            reference_max_abs=max(r.reference_max_abs for r in reports),
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
            relative=self.relative,
            reference_max_abs=self.reference_max_abs,
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
) -> tuple[float, str, int, float]:
    """(max |ref − cand| over all outputs and feeds, where it was, number of samples = feeds × their batch, max
    |ref|). Non-finite → inf."""
    worst, where, n, ref_max = 0.0, "", 0, 0.0
    for i, feed in enumerate(feeds):
        first = next(iter(feed.values()), None)
        n += int(np.shape(first)[0]) if first is not None and np.ndim(first) > 0 else 1
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
            if r.size:
                ref_max = max(ref_max, float(np.abs(r).max()))
            if m > worst or not where:
                worst, where = m, f"sample {i} output {name!r}"
    return worst, where, n, ref_max


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
    relative: bool = False,
) -> ParityReport:
    """Compare on n_random seeded random feeds and on recorded inputs ((N, ...) rows for single-input models, or a
    list of feeds). Returns the report; call `.gate()` to raise ParityError when it fails. relative=True gates
    max |diff| / max |reference output| (a model whose outputs are 6× larger than random weights give keeps its
    gate); False gates max |diff| in output units (a policy's actions)."""
    rand_diff, rand_where, n_rand, ref_max = max_abs_diff(
        reference, candidate, random_feeds(reference.inputs, n_random, seed, batch, scale)
    )
    rec_diff, rec_where, n_rec = None, "", 0
    if recorded is not None:
        if isinstance(recorded, np.ndarray):
            if len(reference.inputs) != 1:
                raise ValueError("recorded rows need a single-input model; pass a list of feeds instead")
            recorded = feeds_from_rows(reference.inputs[0].name, recorded, reference.inputs[0].dtype)
        rec_diff, rec_where, n_rec, rec_max = max_abs_diff(reference, candidate, recorded)
        ref_max = max(ref_max, rec_max)
    worst = f"recorded {rec_where}" if rec_diff is not None and rec_diff > rand_diff else f"random {rand_where}"
    return ParityReport(
        reference.backend, candidate.backend, tolerance, rand_diff, n_rand, rec_diff, n_rec, worst, relative, ref_max
    )


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
