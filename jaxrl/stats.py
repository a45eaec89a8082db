"""Aggregate scores across runs and tasks the way the field reports them: mean, median,
interquartile mean (IQM) and optimality gap with stratified-bootstrap confidence
intervals, run-score performance profiles with CI bands, and probability of improvement.

Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS), and matches the definitions of its library ``rliable``
(google-research/rliable: ``metrics.py``, ``library.py``). ``rliable`` (and the ``arch``
bootstrap it builds on) is not a dependency here, so this is a host-side re-implementation
in plain NumPy; these functions run on small result tables, not inside ``jit``.

A score matrix is ``[num_runs, num_tasks]`` (runs = seeds), one per algorithm, collected in
a ``{algorithm: matrix}`` dict. The metrics also accept leading batch axes
``[..., num_runs, num_tasks]``, which is how the bootstrap evaluates all replicates at once.

Deviations from ``rliable``:
- Only the percentile interval (``rliable``'s default ``method="percentile"``); no basic,
  BC or BCa intervals, and no ``task_bootstrap`` (runs are resampled, tasks are fixed).
- Resampling draws all ``[reps, num_runs, num_tasks]`` indices from one
  ``np.random.default_rng(seed)`` call instead of looping over ``arch``'s bootstrap, so the
  numbers differ from ``rliable``'s at the same ``reps`` by Monte Carlo noise only.
- ``aggregate`` reuses ``seed`` for every algorithm, so an algorithm's interval does not
  depend on which other algorithms are in the dict (``rliable`` advances one random state).
- Performance profiles are the run-score distribution only (``rliable``'s default
  ``use_score_distribution=True``); ``probability_of_improvement`` has no bootstrap CI.
- Non-finite scores raise ``ValueError`` rather than propagating NaN into every statistic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Bound on resampled score entries held at once; only the statistic's evaluation is chunked,
# the indices are drawn in one call so results do not depend on it.
_CHUNK_ELEMENTS = 1 << 22


def _scores(scores: Any, name: str = "scores", batched: bool = True) -> np.ndarray:
    """``scores`` as float64 after checking shape (2-D, or >= 2-D if ``batched``) and values."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2 and not (batched and arr.ndim > 2):
        allowed = "[..., num_runs, num_tasks]" if batched else "[num_runs, num_tasks]"
        raise ValueError(f"{name} must have shape {allowed}; got shape {arr.shape}")
    if arr.shape[-2] == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one run and one task; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.isfinite(arr).sum())
        raise ValueError(f"{name} must be finite; got {bad} NaN/inf entries")
    return arr


def _check_bootstrap_args(reps: int, level: float) -> None:
    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise ValueError(f"reps must be an integer >= 1; got {reps!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in the open interval (0, 1); got {level!r}")


def mean(scores: Any) -> np.ndarray:
    """Mean over tasks of the per-task mean score (``rliable.metrics.aggregate_mean``).

    Args:
      scores: ``[..., num_runs, num_tasks]``.
    Returns:
      ``[...]`` (a 0-d array for one matrix).
    """
    return _scores(scores).mean(axis=-2).mean(axis=-1)


def median(scores: Any) -> np.ndarray:
    """Median over tasks of the per-task mean score (``rliable.metrics.aggregate_median``).

    Args:
      scores: ``[..., num_runs, num_tasks]``.
    Returns:
      ``[...]``.
    """
    return np.median(_scores(scores).mean(axis=-2), axis=-1)


def iqm(scores: Any) -> np.ndarray:
    """Interquartile mean over all runs and tasks pooled: the mean after dropping
    ``floor(n / 4)`` scores from each end, ``n = num_runs * num_tasks``; the same cut as
    ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` (``rliable.metrics.aggregate_iqm``).

    Args:
      scores: ``[..., num_runs, num_tasks]``.
    Returns:
      ``[...]``.
    """
    arr = _scores(scores)
    flat = np.sort(arr.reshape(*arr.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    cut = int(0.25 * n)
    return flat[..., cut : n - cut].mean(axis=-1)


def optimality_gap(scores: Any, gamma: float = 1.0) -> np.ndarray:
    """How far scores fall short of ``gamma``, scores above it counting as ``gamma``:
    ``gamma - mean(min(scores, gamma))`` (``rliable.metrics.aggregate_optimality_gap``).
    Lower is better.

    Args:
      scores: ``[..., num_runs, num_tasks]``.
      gamma: the score that counts as solved (1 for human-normalised scores).
    Returns:
      ``[...]``.
    """
    return gamma - np.minimum(_scores(scores), gamma).mean(axis=(-2, -1))


METRICS: dict[str, Callable[[Any], np.ndarray]] = {
    "mean": mean,
    "median": median,
    "iqm": iqm,
    "optimality_gap": optimality_gap,
}
"""The metrics ``aggregate`` knows by name."""


def stratified_bootstrap_ci(
    scores: Any,
    statistic: Callable[[np.ndarray], Any],
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    batched: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile confidence interval of ``statistic`` under a bootstrap stratified by task:
    each replicate redraws ``num_runs`` runs with replacement independently within every
    task, so every task keeps its run count (``rliable.library.StratifiedBootstrap``).

    Resample indices are ``np.random.default_rng(seed).integers(0, num_runs, (reps,
    num_runs, num_tasks))``; replicate ``r`` is ``scores[idx[r, i, t], t]``.

    Args:
      scores: ``[num_runs, num_tasks]``.
      statistic: maps ``[..., num_runs, num_tasks]`` to ``[..., *out]`` (every metric here
        does); with ``batched=False`` it maps one ``[num_runs, num_tasks]`` matrix to
        ``[*out]`` and is called once per replicate.
      reps: number of bootstrap replicates.
      level: coverage of the interval, in (0, 1).
      seed: seed of the resampling.
      batched: whether ``statistic`` accepts leading batch axes.
    Returns:
      ``(point, low, high)``, each ``[*out]`` (0-d for a scalar statistic): the statistic of
      ``scores`` and the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the
      replicates (linear interpolation).
    """
    scores = _scores(scores, batched=False)
    _check_bootstrap_args(reps, level)
    num_runs, num_tasks = scores.shape
    point = np.asarray(statistic(scores), dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, num_runs, (reps, num_runs, num_tasks))
    chunk = max(1, _CHUNK_ELEMENTS // scores.size)
    replicates = np.empty((reps, *point.shape))
    for start in range(0, reps, chunk):
        resampled = np.take_along_axis(scores[None], idx[start : start + chunk], axis=1)
        if batched:
            values = np.asarray(statistic(resampled), dtype=np.float64)
        else:
            values = np.stack([np.asarray(statistic(s), dtype=np.float64) for s in resampled])
        if values.shape != (len(resampled), *point.shape):
            raise ValueError(
                f"statistic on a batch of {len(resampled)} replicates must return shape "
                f"{(len(resampled), *point.shape)}; got {values.shape} (pass batched=False "
                "for a function of one matrix)"
            )
        replicates[start : start + chunk] = values
    low, high = np.percentile(replicates, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return point, low, high


def aggregate(
    score_dict: Mapping[str, Any],
    metrics: Sequence[str] = ("mean", "median", "iqm"),
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Any:
    """Point estimates and stratified-bootstrap intervals of named metrics per algorithm
    (``rliable.library.get_interval_estimates``). All metrics of an algorithm share its
    replicates; every algorithm is resampled with the same ``seed``.

    Args:
      score_dict: ``{algorithm: [num_runs, num_tasks]}``; run counts may differ.
      metrics: names from ``METRICS``.
      reps, level, seed: as in ``stratified_bootstrap_ci``.
    Returns:
      A ``pandas.DataFrame`` with one row per algorithm and metric (algorithms in dict order,
      then metrics in the given order) and columns ``algorithm, metric, value, ci_low,
      ci_high``.
    """
    import pandas as pd

    if not score_dict:
        raise ValueError("score_dict must hold at least one algorithm; got an empty mapping")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if not metrics or unknown:
        raise ValueError(f"metrics must be a non-empty subset of {sorted(METRICS)}; got {metrics}")
    funcs = [METRICS[m] for m in metrics]
    rows = []
    for algorithm, scores in score_dict.items():
        scores = _scores(scores, name=f"score_dict[{algorithm!r}]", batched=False)
        point, low, high = stratified_bootstrap_ci(
            scores, lambda s: np.stack([f(s) for f in funcs], axis=-1), reps, level, seed
        )
        for i, metric in enumerate(metrics):
            rows.append((algorithm, metric, float(point[i]), float(low[i]), float(high[i])))
    return pd.DataFrame(rows, columns=["algorithm", "metric", "value", "ci_low", "ci_high"])


def _taus(taus: Any) -> np.ndarray:
    arr = np.asarray(taus, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"taus must be a non-empty 1-D array of finite thresholds; got {taus!r}")
    return arr


def performance_profile(scores: Any, taus: Any) -> np.ndarray:
    """Run-score distribution: the fraction of all runs (of all tasks) scoring above each
    threshold, i.e. the mean over tasks of the fraction of a task's runs with score > tau
    (``rliable.library.create_performance_profile``, ``use_score_distribution=True``).

    Args:
      scores: ``[..., num_runs, num_tasks]``.
      taus: ``[num_taus]`` thresholds.
    Returns:
      ``[..., num_taus]``, non-increasing in tau for sorted ``taus``.
    """
    arr, taus = _scores(scores), _taus(taus)
    return (arr[..., None] > taus).mean(axis=(-3, -2))


def performance_profile_ci(
    scores: Any, taus: Any, reps: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``performance_profile`` with its pointwise stratified-bootstrap interval band.

    Args:
      scores: ``[num_runs, num_tasks]``.
      taus: ``[num_taus]`` thresholds.
      reps, level, seed: as in ``stratified_bootstrap_ci``.
    Returns:
      ``(profile, low, high)``, each ``[num_taus]``.
    """
    taus = _taus(taus)
    return stratified_bootstrap_ci(
        scores, lambda s: performance_profile(s, taus), reps=reps, level=level, seed=seed
    )


def probability_of_improvement(scores_x: Any, scores_y: Any) -> float:
    """P(X > Y) averaged over tasks: for each task, the probability that a random run of X
    beats a random run of Y, ties counting one half; this is the Mann-Whitney U statistic
    of X over Y divided by ``num_runs_x * num_runs_y``
    (``rliable.metrics.probability_of_improvement``).

    Args:
      scores_x: ``[num_runs_x, num_tasks]``.
      scores_y: ``[num_runs_y, num_tasks]``.
    Returns:
      A probability in [0, 1]; 0.5 when X and Y have the same scores.
    """
    x = _scores(scores_x, name="scores_x", batched=False)
    y = _scores(scores_y, name="scores_y", batched=False)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"scores_y must have as many tasks as scores_x ({x.shape[1]}); got {y.shape[1]}"
        )
    # [num_runs_x, num_runs_y, num_tasks]: every pair of runs within each task.
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def plot_intervals(table: Any, path: Path | str, xlabel: str = "score") -> None:
    """Write a PNG with one panel per metric: a bar from ``ci_low`` to ``ci_high`` and a
    tick at ``value`` for every algorithm (``rliable.plot_utils.plot_interval_estimates``).

    Args:
      table: the ``DataFrame`` from ``aggregate``.
      path: where to write the PNG.
      xlabel: label under the panels.
    """
    from matplotlib.figure import Figure

    needed = {"algorithm", "metric", "value", "ci_low", "ci_high"}
    if not needed.issubset(getattr(table, "columns", ())) or len(table) == 0:
        raise ValueError(f"table must be a non-empty DataFrame with columns {sorted(needed)}")
    algorithms = list(dict.fromkeys(table["algorithm"]))
    metrics = list(dict.fromkeys(table["metric"]))
    fig = Figure(figsize=(3.2 * len(metrics), 1.0 + 0.45 * len(algorithms)))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colors = {a: f"C{i % 10}" for i, a in enumerate(algorithms)}
    for ax, metric in zip(axes, metrics, strict=True):
        rows = table[table["metric"] == metric]
        for _, row in rows.iterrows():
            y = algorithms.index(row["algorithm"])
            width = row["ci_high"] - row["ci_low"]
            ax.barh(y, width, left=row["ci_low"], height=0.6, color=colors[row["algorithm"]])
            ax.vlines(row["value"], y - 0.3, y + 0.3, color="k")
        ax.set_yticks(range(len(algorithms)), algorithms if ax is axes[0] else [])
        ax.set_ylim(-0.6, len(algorithms) - 0.4)
        ax.set_title(metric)
        ax.set_xlabel(xlabel)
        ax.grid(True, axis="x", alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_profiles(
    score_dict: Mapping[str, Any],
    taus: Any,
    path: Path | str,
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> None:
    """Write a PNG of every algorithm's performance profile with its bootstrap band
    (``rliable.plot_utils.plot_performance_profiles``).

    Args:
      score_dict: ``{algorithm: [num_runs, num_tasks]}``.
      taus: ``[num_taus]`` thresholds, the x axis.
      path: where to write the PNG.
      reps, level, seed: as in ``stratified_bootstrap_ci``.
    """
    from matplotlib.figure import Figure

    if not score_dict:
        raise ValueError("score_dict must hold at least one algorithm; got an empty mapping")
    taus = _taus(taus)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for i, (algorithm, scores) in enumerate(score_dict.items()):
        scores = _scores(scores, name=f"score_dict[{algorithm!r}]", batched=False)
        profile, low, high = performance_profile_ci(scores, taus, reps, level, seed)
        ax.plot(taus, profile, color=f"C{i % 10}", label=algorithm)
        ax.fill_between(taus, low, high, color=f"C{i % 10}", alpha=0.2)
    ax.set_xlabel(r"score threshold $\tau$")
    ax.set_ylabel(r"fraction of runs with score $> \tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"performance profiles ({level:.0%} stratified-bootstrap bands)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
