"""jaxrl.stats against independent references: hand-derived values, sorting and NumPy/SciPy
done directly in the test, an ordinary bootstrap written here, and CI coverage on data
with a known mean."""

import re

import numpy as np
import pytest
import scipy.stats

from jaxrl import stats


def random_scores(seed, shape=(10, 5)):
    rng = np.random.default_rng(seed)
    # Tasks on different scales, skewed within each, as normalised RL scores are.
    return rng.gamma(2.0, 1.0, size=shape) * np.linspace(0.5, 3.0, shape[1])


# --- point estimates ------------------------------------------------------------------------


def test_iqm_hand_example():
    # Scores 1..8 pooled over runs and tasks: n = 8, floor(8 / 4) = 2 scores cut from each
    # end ({1, 2} and {7, 8}), leaving 3, 4, 5, 6 with mean 18 / 4 = 4.5.
    scores = np.arange(1.0, 9.0).reshape(4, 2)
    assert stats.iqm(scores) == pytest.approx(4.5)


@pytest.mark.parametrize("shape", [(10, 5), (3, 3), (7, 1), (1, 6)])
def test_iqm_is_mean_of_sorted_middle_half(shape):
    scores = random_scores(1, shape)
    pooled = np.sort(scores.ravel())
    n = pooled.size
    cut = n // 4
    expected = pooled[cut : n - cut].mean()
    assert stats.iqm(scores) == pytest.approx(expected)
    assert stats.iqm(scores) == pytest.approx(scipy.stats.trim_mean(scores, 0.25, axis=None))


def test_mean_and_median_of_task_means():
    scores = random_scores(2, (7, 6))
    task_means = [np.mean(scores[:, t]) for t in range(scores.shape[1])]
    assert stats.mean(scores) == pytest.approx(np.mean(task_means))
    assert stats.median(scores) == pytest.approx(np.median(task_means))
    # The median of task means, not of all scores: [[0, 0, 9], [10, 10, 9]] has task means
    # 5, 5, 9 (median 5) but pooled median 9.
    example = np.array([[0.0, 0.0, 9.0], [10.0, 10.0, 9.0]])
    assert stats.median(example) == pytest.approx(5.0)


def test_optimality_gap_hand_example():
    # Clipped at gamma = 1: 0.5, 1, 1, 0 -> mean 0.625 -> gap 1 - 0.625 = 0.375.
    scores = np.array([[0.5, 2.0], [1.0, 0.0]])
    assert stats.optimality_gap(scores) == pytest.approx(0.375)
    # Clipped at gamma = 2: 0.5, 2, 1, 0 -> mean 0.875 -> gap 1.125.
    assert stats.optimality_gap(scores, gamma=2.0) == pytest.approx(1.125)


@pytest.mark.parametrize("name", sorted(stats.METRICS))
def test_metrics_over_a_batch_equal_a_loop(name):
    batch = np.stack([random_scores(seed, (6, 4)) for seed in range(5)])
    metric = stats.METRICS[name]
    np.testing.assert_allclose(metric(batch), [metric(m) for m in batch])


# --- stratified bootstrap -------------------------------------------------------------------


def test_one_task_is_an_ordinary_percentile_bootstrap():
    x = random_scores(3, (15, 1))[:, 0]
    reps, seed = 500, 7
    # The draw order the docstring documents: (reps, num_runs, 1) from one call equals
    # (reps, num_runs) from the same generator.
    idx = np.random.default_rng(seed).integers(0, len(x), (reps, len(x)))
    means = np.array([x[row].mean() for row in idx])
    expected = np.percentile(means, [2.5, 97.5])
    point, low, high = stats.stratified_bootstrap_ci(x[:, None], stats.mean, reps, 0.95, seed)
    assert point == pytest.approx(x.mean())
    np.testing.assert_allclose([low, high], expected)


def test_ci_of_the_mean_covers_the_true_mean_about_95_percent():
    true_mean, trials = 3.0, 200
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(trials):
        x = rng.normal(true_mean, 2.0, size=(30, 1))
        _, low, high = stats.stratified_bootstrap_ci(x, stats.mean, reps=1000, seed=trial)
        covered += low <= true_mean <= high
    assert 0.88 <= covered / trials <= 0.99


@pytest.mark.parametrize("name", ["mean", "median", "iqm", "optimality_gap"])
def test_ci_contains_point_estimate(name):
    scores = random_scores(4, (10, 5))
    point, low, high = stats.stratified_bootstrap_ci(scores, stats.METRICS[name], reps=2000)
    assert low <= point <= high
    assert low < high


def test_resampling_is_stratified_by_task():
    # Run i scores i on task 0 and 1000 * i on task 1.
    runs = np.arange(1.0, 7.0)
    scores = np.stack([runs, 1000 * runs], axis=1)
    replicates = []

    def record(matrix):
        replicates.append(matrix.copy())
        return matrix.mean()

    stats.stratified_bootstrap_ci(scores, record, reps=300, seed=1, batched=False)
    replicates = np.stack(replicates[1:])  # the first call is the point estimate
    assert replicates.shape == (300, 6, 2)
    # Every replicate draws each task's runs from that task alone, num_runs of them.
    assert np.isin(replicates[..., 0], runs).all()
    assert np.isin(replicates[..., 1], 1000 * runs).all()
    # With replacement: some replicate repeats a run.
    assert any(len(np.unique(r[:, 0])) < 6 for r in replicates)
    # Independently per task: a shared run index per row would keep task 1 = 1000 * task 0.
    assert (replicates[..., 1] != 1000 * replicates[..., 0]).any()


def test_batched_and_per_matrix_statistics_agree():
    scores = random_scores(5)
    batched = stats.stratified_bootstrap_ci(scores, stats.iqm, reps=300, seed=3)
    looped = stats.stratified_bootstrap_ci(scores, stats.iqm, reps=300, seed=3, batched=False)
    np.testing.assert_allclose(batched, looped)


def test_bootstrap_is_deterministic_in_the_seed():
    scores = random_scores(6)
    first = stats.stratified_bootstrap_ci(scores, stats.mean, reps=200, seed=11)
    again = stats.stratified_bootstrap_ci(scores, stats.mean, reps=200, seed=11)
    other = stats.stratified_bootstrap_ci(scores, stats.mean, reps=200, seed=12)
    np.testing.assert_array_equal(first, again)
    assert first[1:] != other[1:]


def test_constant_scores_give_a_degenerate_interval():
    point, low, high = stats.stratified_bootstrap_ci(np.full((5, 3), 2.5), stats.iqm, reps=100)
    assert point == low == high == 2.5


def test_statistic_with_the_wrong_batch_shape_is_rejected():
    with pytest.raises(ValueError, match="batched=False"):
        stats.stratified_bootstrap_ci(random_scores(0), lambda s: float(np.mean(s)), reps=10)


# --- aggregate ------------------------------------------------------------------------------


def test_aggregate_table():
    score_dict = {"a": random_scores(7, (10, 5)), "b": random_scores(8, (6, 5)) + 1.0}
    table = stats.aggregate(score_dict, reps=500)
    assert list(table.columns) == ["algorithm", "metric", "value", "ci_low", "ci_high"]
    assert list(table["algorithm"]) == ["a"] * 3 + ["b"] * 3
    assert list(table["metric"]) == ["mean", "median", "iqm"] * 2
    for algorithm, scores in score_dict.items():
        rows = table[table["algorithm"] == algorithm].set_index("metric")
        pooled = np.sort(scores.ravel())
        cut = pooled.size // 4
        assert rows.loc["mean", "value"] == pytest.approx(scores.mean())
        assert rows.loc["median", "value"] == pytest.approx(np.median(scores.mean(axis=0)))
        assert rows.loc["iqm", "value"] == pytest.approx(pooled[cut : pooled.size - cut].mean())
    assert (table["ci_low"] <= table["value"]).all()
    assert (table["value"] <= table["ci_high"]).all()
    # Each algorithm is resampled alone: dropping "b" leaves "a"'s rows unchanged.
    alone = stats.aggregate({"a": score_dict["a"]}, reps=500)
    np.testing.assert_array_equal(alone[["value", "ci_low", "ci_high"]], table.iloc[:3, 2:])


def test_aggregate_interval_matches_stratified_bootstrap_ci():
    scores = random_scores(9)
    table = stats.aggregate({"a": scores}, metrics=["optimality_gap"], reps=400, seed=5)
    point, low, high = stats.stratified_bootstrap_ci(scores, stats.optimality_gap, 400, 0.95, 5)
    np.testing.assert_allclose(table.loc[0, ["value", "ci_low", "ci_high"]], [point, low, high])


# --- performance profiles -------------------------------------------------------------------


def test_performance_profile_hand_example_and_shape():
    # Task 0 runs score 1, 3; task 1 runs score 2, 4. Above 2.5: {3, 4} -> 2 / 4 = 0.5.
    # Above 0: all -> 1. Above 3.5: {4} -> 0.25. Above 4: none -> 0 (strictly greater).
    scores = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(
        stats.performance_profile(scores, [0.0, 2.5, 3.5, 4.0]), [1.0, 0.5, 0.25, 0.0]
    )


def test_performance_profile_against_a_loop():
    scores = random_scores(10, (8, 4))
    taus = np.linspace(-1.0, scores.max() + 1.0, 41)
    profile = stats.performance_profile(scores, taus)
    for tau, fraction in zip(taus, profile, strict=True):
        # Mean over tasks of the fraction of that task's runs above tau.
        per_task = [np.sum(scores[:, t] > tau) / scores.shape[0] for t in range(scores.shape[1])]
        assert fraction == pytest.approx(np.mean(per_task))
    assert np.all(np.diff(profile) <= 0)
    assert profile[taus < scores.min()] == pytest.approx(1.0)
    assert np.all(profile[taus >= scores.max()] == 0.0)


def test_performance_profile_ci_band():
    scores = random_scores(11, (10, 5))
    taus = np.linspace(0.0, scores.max(), 25)
    profile, low, high = stats.performance_profile_ci(scores, taus, reps=500, seed=2)
    assert profile.shape == low.shape == high.shape == (25,)
    np.testing.assert_allclose(profile, stats.performance_profile(scores, taus))
    assert np.all((low >= 0.0) & (low <= profile) & (profile <= high) & (high <= 1.0))
    assert np.all(np.diff(low) <= 0) and np.all(np.diff(high) <= 0)


# --- probability of improvement -------------------------------------------------------------


def test_probability_of_improvement_is_mann_whitney_u_over_pairs():
    rng = np.random.default_rng(12)
    # Integer scores so there are ties; run counts differ between the algorithms.
    x = rng.integers(0, 5, size=(7, 3)).astype(float)
    y = rng.integers(0, 5, size=(5, 3)).astype(float)
    per_task = [
        scipy.stats.mannwhitneyu(x[:, t], y[:, t], alternative="greater").statistic / (7 * 5)
        for t in range(3)
    ]
    assert stats.probability_of_improvement(x, y) == pytest.approx(np.mean(per_task))
    assert stats.probability_of_improvement(x, y) + stats.probability_of_improvement(
        y, x
    ) == pytest.approx(1.0)


def test_probability_of_improvement_extremes():
    x = random_scores(13, (5, 4))
    assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)
    assert stats.probability_of_improvement(x + 100.0, x) == pytest.approx(1.0)
    assert stats.probability_of_improvement(x, x + 100.0) == pytest.approx(0.0)


# --- bad input ------------------------------------------------------------------------------

GOOD = np.ones((4, 3))


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: stats.iqm(np.ones(5)), "scores"),
        (lambda: stats.mean(np.ones((0, 3))), "scores"),
        (lambda: stats.median(np.ones((3, 0))), "scores"),
        (lambda: stats.mean(np.array([[1.0, np.nan]])), "scores"),
        (lambda: stats.stratified_bootstrap_ci(np.ones((2, 4, 3)), stats.mean), "scores"),
        (lambda: stats.stratified_bootstrap_ci(GOOD, stats.mean, level=1.0), "level"),
        (lambda: stats.stratified_bootstrap_ci(GOOD, stats.mean, level=0.0), "level"),
        (lambda: stats.stratified_bootstrap_ci(GOOD, stats.mean, reps=0), "reps"),
        (lambda: stats.stratified_bootstrap_ci(GOOD, stats.mean, reps=2.5), "reps"),
        (lambda: stats.aggregate({}), "score_dict"),
        (lambda: stats.aggregate({"a": np.ones(3)}), "score_dict['a']"),
        (lambda: stats.aggregate({"a": GOOD}, metrics=["mode"]), "metrics"),
        (lambda: stats.performance_profile(GOOD, [[0.0]]), "taus"),
        (lambda: stats.performance_profile(GOOD, []), "taus"),
        (lambda: stats.performance_profile_ci(GOOD, [0.5], level=1.5), "level"),
        (lambda: stats.probability_of_improvement(GOOD, np.ones((4, 2))), "scores_y"),
        (lambda: stats.plot_intervals(GOOD, "unused.png"), "table"),
    ],
)
def test_bad_input_raises_naming_the_field(call, field):
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        call()


# --- plots ----------------------------------------------------------------------------------


def test_plots_write_pngs(tmp_path):
    score_dict = {"a": random_scores(14, (6, 4)), "b": random_scores(15, (6, 4)) * 1.5}
    table = stats.aggregate(score_dict, metrics=list(stats.METRICS), reps=100)
    stats.plot_intervals(table, tmp_path / "intervals.png")
    stats.plot_profiles(score_dict, np.linspace(0, 10, 30), tmp_path / "profiles.png", reps=100)
    for name in ["intervals.png", "profiles.png"]:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
