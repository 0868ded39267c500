"""Reference detectors for the detection benchmark, fed the same 10 s window counts.

Each detector sees, per closed window, a ``(services, codes)`` matrix of request
counts (the fleet is the column sum) and returns the alert state changes of
that window as JSON objects shaped like statuswatch's (``id, state, signal,
code, direction, scope, window_start, window_end, episode_start, score``), so
:func:`statuswatch.evaluate.evaluate` scores them all alike.

* :class:`StaticThreshold` -- fleet 5xx share above 1 % in a window. Fires on the
  first window above, resolves on the first window below: one alert per episode.
* :class:`ZScore` -- a Gaussian z-score of each code's share, per (scope in
  fleet + each service, code), against the mean and (population) standard
  deviation of the same series over the previous hour of windows, as a
  Prometheus rule ``(x - avg_over_time(x[1h])) / stddev_over_time(x[1h])`` with
  ``|z| > 3`` and ``for:`` one window: it fires on the second consecutive
  window past the threshold and resolves on the first window back under it.
  A window counts only if its scope saw at least 1 request/s (10 requests),
  the minimum-volume guard of GitLab-style SLO rules. Prometheus arithmetic is
  kept: ``x / 0`` is ``+Inf`` (fires), ``0 / 0`` is NaN (does not).
* :class:`HalfSpaceTreesDetector` -- River's ``anomaly.HalfSpaceTrees`` on the
  vector of fleet code shares (codes seen in warm-up, plus "other" for the rest),
  with per-feature ``limits`` ``[0, 2 x warm-up max]`` (the ``limits`` argument
  River documents for features outside [0, 1]). It learns online on every
  window; the alert threshold is the ``quantile`` of its scores on the warm-up
  windows (after its first reference window of ``window_size`` observations).
  It fires while the score is above. A multivariate score names no code, so the
  alert is attributed to the code whose share moved most against its
  exponentially weighted mean (absolute log-ratio); scope is the fleet.

Every detector stays silent during ``warmup_windows``.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Hashable
from typing import Any

import numpy as np
import numpy.typing as npt
from river import anomaly

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

__all__ = ["HalfSpaceTreesDetector", "Reference", "StaticThreshold", "ZScore"]


def _alert_id(name: str, scope: dict[str, str], code: int, direction: str, start_ms: int) -> str:
    key = json.dumps([name, sorted(scope.items()), code, direction, start_ms])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _alert(
    name: str, state: str, *, code: int, direction: str, scope: dict[str, str],
    window_start_ms: int, window_end_ms: int, episode_start_ms: int, score: float,
) -> dict[str, Any]:
    return {
        "id": _alert_id(name, scope, code, direction, episode_start_ms),
        "state": state,
        "signal": "share",
        "code": code,
        "direction": direction,
        "scope": scope,
        "window_start": window_start_ms / 1000,
        "window_end": window_end_ms / 1000,
        "episode_start": episode_start_ms / 1000,
        "score": round(float(score), 4) if math.isfinite(score) else str(score),
        "detector": name,
    }


class Reference:
    """Base: window bookkeeping shared by the reference detectors."""

    name = "reference"

    def __init__(self, codes: tuple[int, ...], services: tuple[str, ...], warmup_windows: int):
        self.codes = codes
        self.services = services
        self.warmup_windows = warmup_windows
        self.windows_seen = 0

    def observe(self, start_ms: int, end_ms: int, counts: I64) -> list[dict[str, Any]]:
        """One closed window: ``counts[service, code]``; returns alert state changes."""
        if counts.shape != (len(self.services), len(self.codes)):
            raise ValueError("counts must have shape (services, codes)")
        out = self._observe(start_ms, end_ms, counts, self.windows_seen >= self.warmup_windows)
        self.windows_seen += 1
        return out

    def _observe(
        self, start_ms: int, end_ms: int, counts: I64, armed: bool
    ) -> list[dict[str, Any]]:
        raise NotImplementedError


class StaticThreshold(Reference):
    """Fleet 5xx share above ``threshold`` in a window.

    >>> d = StaticThreshold((200, 500), ("a",), warmup_windows=0)
    >>> [a["state"] for t in range(4) for a in d.observe(
    ...     t * 10_000, (t + 1) * 10_000, np.array([[90, 10 if t in (1, 2) else 0]]))]
    ['firing', 'resolved']
    """

    name = "static-5xx>1%"

    def __init__(
        self, codes: tuple[int, ...], services: tuple[str, ...], warmup_windows: int, *,
        threshold: float = 0.01,
    ) -> None:
        super().__init__(codes, services, warmup_windows)
        self.threshold = threshold
        self.is5xx = np.array([500 <= c <= 599 for c in codes])
        self.firing: dict[str, Any] | None = None

    def _observe(
        self, start_ms: int, end_ms: int, counts: I64, armed: bool
    ) -> list[dict[str, Any]]:
        fleet = counts.sum(axis=0)
        total = int(fleet.sum())
        errors = fleet * self.is5xx
        share = float(errors.sum()) / total if total else 0.0
        above = armed and share > self.threshold
        if above and self.firing is None:
            code = self.codes[int(np.argmax(errors))]
            self.firing = _alert(
                self.name, "firing", code=code, direction="up", scope={},
                window_start_ms=start_ms, window_end_ms=end_ms, episode_start_ms=end_ms,
                score=share,
            )
            return [self.firing]
        if not above and self.firing is not None:
            f, self.firing = self.firing, None
            return [{**f, "state": "resolved", "window_start": start_ms / 1000,
                     "window_end": end_ms / 1000, "score": round(share, 4)}]
        return []


class ZScore(Reference):
    """Per (scope, code) share z-score over the last hour; ``|z| > 3`` for one window.

    >>> d = ZScore((200, 403), ("a",), warmup_windows=0, history_windows=30)
    >>> out = [a for t in range(32) for a in d.observe(t * 10_000, (t + 1) * 10_000,
    ...        np.array([[100, 1 + (t % 2)] if t < 30 else [50, 50]]))]
    >>> [(a["scope"].get("service", "fleet"), a["code"], a["direction"]) for a in out][:3]
    [('fleet', 200, 'down'), ('fleet', 403, 'up'), ('a', 200, 'down')]
    >>> {a["window_end"] for a in out}
    {320.0}
    """

    name = "z-score(1h)>3"

    def __init__(
        self, codes: tuple[int, ...], services: tuple[str, ...], warmup_windows: int, *,
        history_windows: int = 360, z: float = 3.0, for_windows: int = 1,
        min_requests: int = 10,
    ) -> None:
        super().__init__(codes, services, warmup_windows)
        self.z = z
        self.for_windows = for_windows
        self.min_requests = min_requests
        self.scopes: list[dict[str, str]] = [{}] + [{"service": s} for s in services]
        # ring buffer of past shares, NaN where the scope had too little traffic
        self.history = np.full((history_windows, len(self.scopes), len(codes)), np.nan)
        self.filled = 0
        self.pos = 0
        #: consecutive windows past the threshold, per (scope, code, direction)
        self.streak = np.zeros((len(self.scopes), len(codes), 2), np.int64)
        self.firing: dict[tuple[int, int, int], dict[str, Any]] = {}

    def _observe(
        self, start_ms: int, end_ms: int, counts: I64, armed: bool
    ) -> list[dict[str, Any]]:
        per_scope = np.vstack([counts.sum(axis=0, keepdims=True), counts]).astype(np.float64)
        totals = per_scope.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(totals >= self.min_requests, per_scope / totals, np.nan)
        z = np.full(share.shape, np.nan)
        if self.filled:
            past = self.history[: self.filled]
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series are expected
                mean = np.nanmean(past, axis=0)
                std = np.nanstd(past, axis=0)
                z = (share - mean) / std  # x/0 = +-Inf, 0/0 = NaN: Prometheus arithmetic
        self.history[self.pos] = share
        self.pos = (self.pos + 1) % self.history.shape[0]
        self.filled = min(self.filled + 1, self.history.shape[0])
        with np.errstate(invalid="ignore"):
            past_up, past_down = z > self.z, z < -self.z
        past = np.stack([past_up, past_down], axis=-1)
        self.streak = np.where(past, self.streak + 1, 0)
        out: list[dict[str, Any]] = []
        for key in list(self.firing):
            if not past[key]:
                f = self.firing.pop(key)
                out.append({**f, "state": "resolved", "window_start": start_ms / 1000,
                            "window_end": end_ms / 1000})
        if not armed:
            return out
        for s, c, d in zip(*np.nonzero(self.streak > self.for_windows), strict=True):
            key = (int(s), int(c), int(d))
            if key in self.firing:
                continue
            self.firing[key] = a = _alert(
                self.name, "firing", code=self.codes[key[1]],
                direction="up" if key[2] == 0 else "down", scope=self.scopes[key[0]],
                window_start_ms=start_ms, window_end_ms=end_ms, episode_start_ms=end_ms,
                score=float(z[key[0], key[1]]),
            )
            out.append(a)
        return out


class HalfSpaceTreesDetector(Reference):
    """River Half-Space Trees on fleet code shares, thresholded at a warm-up quantile."""

    name = "river-HST"

    def __init__(
        self, codes: tuple[int, ...], services: tuple[str, ...], warmup_windows: int, *,
        quantile: float = 0.999, n_trees: int = 50, height: int = 6, window_size: int = 250,
        seed: int = 42, clear_windows: int = 3, attribution_half_life: float = 90.0,
    ) -> None:
        super().__init__(codes, services, warmup_windows)
        if warmup_windows <= window_size:
            raise ValueError("HST needs more warm-up windows than its window_size")
        self.quantile = quantile
        self.hst_args = {"n_trees": n_trees, "height": height, "window_size": window_size,
                         "seed": seed}
        self.model: Any = None
        self.warm: list[F64] = []  # warm-up share vectors
        self.features: list[int] = []  # code columns with their own feature
        self.threshold = math.inf
        self.scores: list[float] = []
        self.firing: dict[str, Any] | None = None
        self.clear_windows = clear_windows
        self.calm = 0
        self.alpha = 1.0 - 0.5 ** (1.0 / attribution_half_life)
        self.ew_share: F64 | None = None

    def _vector(self, share: F64) -> dict[str, float]:
        x = {str(self.codes[c]): float(share[c]) for c in self.features}
        rest = np.ones(len(self.codes), dtype=bool)
        rest[self.features] = False
        x["other"] = float(share[rest].sum())
        return x

    def _start_model(self) -> None:
        warm = np.array(self.warm)
        self.features = [int(c) for c in np.flatnonzero(warm.max(axis=0) > 0)]
        limits: dict[Hashable, tuple[float, float]] = {
            str(self.codes[c]): (0.0, max(2.0 * float(warm[:, c].max()), 1e-3))
            for c in self.features
        }
        limits["other"] = (0.0, 1e-3)
        self.model = anomaly.HalfSpaceTrees(limits=limits, **self.hst_args)
        scores = []
        window_size = int(self.hst_args["window_size"])
        for i, share in enumerate(self.warm):
            x = self._vector(share)
            if i >= window_size:
                scores.append(self.model.score_one(x))
            self.model.learn_one(x)
        self.threshold = float(np.quantile(scores, self.quantile))

    def _observe(
        self, start_ms: int, end_ms: int, counts: I64, armed: bool
    ) -> list[dict[str, Any]]:
        fleet = counts.sum(axis=0).astype(np.float64)
        total = fleet.sum()
        share = fleet / total if total else np.zeros_like(fleet)
        if not armed:
            self.warm.append(share)
            self._attribution_learn(share)
            return []
        if self.model is None:
            self._start_model()
        x = self._vector(share)
        score = float(self.model.score_one(x))
        self.model.learn_one(x)
        self.scores.append(score)
        above = score > self.threshold
        self.calm = 0 if above else self.calm + 1
        out: list[dict[str, Any]] = []
        if above and self.firing is None:
            code, direction = self._attribute(share)
            self.firing = _alert(
                self.name, "firing", code=code, direction=direction, scope={},
                window_start_ms=start_ms, window_end_ms=end_ms, episode_start_ms=end_ms,
                score=score,
            )
            out.append(self.firing)
        elif self.firing is not None and self.calm >= self.clear_windows:
            f, self.firing = self.firing, None
            out.append({**f, "state": "resolved", "window_start": start_ms / 1000,
                        "window_end": end_ms / 1000, "score": round(score, 4)})
        if self.firing is None:
            self._attribution_learn(share)
        return out

    def _attribution_learn(self, share: F64) -> None:
        if self.ew_share is None:
            self.ew_share = share.copy()
        else:
            self.ew_share += self.alpha * (share - self.ew_share)

    def _attribute(self, share: F64) -> tuple[int, str]:
        ref = self.ew_share if self.ew_share is not None else np.zeros_like(share)
        eps = 1e-3  # so that a rare code vanishing does not outweigh a common one soaring
        ratio = np.log((share + eps) / (ref + eps))
        c = int(np.argmax(np.abs(ratio)))
        return self.codes[c], "up" if ratio[c] > 0 else "down"
