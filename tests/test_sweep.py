"""Sweeps: every row of the table is the run it names, whatever the batching; bad grids
are refused before compiling; the saved table feeds the statistics."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

import envs
from jaxrl import experiment, stats, sweep
from jaxrl.agents import ppo

ENV = "GridWorld-Empty-8x8"
CONFIG = ppo.PPOConfig(num_envs=4, rollout_len=16, total_steps=4 * 16 * 8)
GRID = {"lr": [1e-3, 3e-4], "ent_coef": [0.0, 0.05]}
ENV_GRID = {"slip": [0.0, 0.3]}
FIXED = {"step_cost": 0.05}  # held for every run, not swept


@pytest.fixture(scope="module")
def result():
    # 2 slips x 4 grid points x 2 seeds = 16 runs in batches of 3 (the last batch short).
    return sweep.sweep(
        ppo.make_train, CONFIG, ENV, ppo.PPOHParams(), GRID, num_seeds=2, env_grid=ENV_GRID,
        batch_size=3, make_policy=ppo.make_policy, eval_episodes=8, env_overrides=FIXED,
    )  # fmt: skip


def standalone(slip, lr, ent_coef):
    """The same runs trained directly: both seeds vmapped, with the sweep's seed keys."""
    env, params = envs.make(ENV, slip=slip, **FIXED)
    train = ppo.make_train(CONFIG, env, params)
    hparams = ppo.PPOHParams(lr=lr, ent_coef=ent_coef)
    keys = jax.random.split(jax.random.key(0), 2)
    return jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, hparams)[1]


def test_table_has_one_row_per_run_with_every_swept_value(result):
    table = result.table
    assert len(table) == 16
    assert list(table.columns[:5]) == ["run", "seed", "slip", "lr", "ent_coef"]
    assert {"final_return", "eval_return", "entropy", "value_loss"} <= set(table.columns)
    # Env params outermost, then the grid (last name fastest), seeds innermost.
    assert table["slip"].tolist() == [0.0] * 8 + [0.3] * 8
    assert table["lr"].tolist()[:8] == [1e-3] * 4 + [3e-4] * 4
    assert table["ent_coef"].tolist()[:4] == [0.0, 0.0, 0.05, 0.05]
    assert table["seed"].tolist() == [0, 1] * 8
    assert result.curves["episodes"].shape == (16, CONFIG.num_updates)
    assert np.isfinite(table["eval_return"]).all()


@pytest.mark.parametrize("row", [0, 13])
def test_a_row_equals_the_run_trained_on_its_own(result, row):
    slip, lr, ent = result.table.loc[row, ["slip", "lr", "ent_coef"]]
    seed = result.table.loc[row, "seed"]
    metrics = standalone(slip, lr, ent)
    # Batches of 3 runs and a vmap of 2 may order float sums differently: allclose.
    for name, values in metrics.items():
        np.testing.assert_allclose(
            result.curves[name][row], np.asarray(values)[seed], rtol=1e-4, atol=1e-5
        )
    expected = experiment.final_returns(jax.device_get(metrics))[seed]
    assert result.table.loc[row, "final_return"] == pytest.approx(expected, abs=1e-4, nan_ok=True)


def test_save_writes_the_table_curves_and_what_was_swept(result, tmp_path):
    result.save(tmp_path)
    table = pd.read_csv(tmp_path / "runs.csv")
    pd.testing.assert_frame_equal(table, result.table, check_dtype=False)
    assert np.load(tmp_path / "curves.npz")["episodes"].shape == (16, CONFIG.num_updates)
    info = json.loads((tmp_path / "sweep.json").read_text())
    assert info["grid"] == GRID and info["num_runs"] == 16 and info["batch_size"] == 3
    assert info["env_overrides"] == FIXED
    # Seeds x tasks matrix per learning rate for the statistics module.
    for _, group in table.groupby("lr"):
        scores = group.pivot_table(index="seed", columns=["slip", "ent_coef"], values="eval_return")
        point, low, high = stats.stratified_bootstrap_ci(scores.to_numpy(), stats.iqm, reps=200)
        assert low <= point <= high


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": {"learning_rate": [1e-3]}}, r"\['learning_rate'\] are not hyperparameters"),
        ({"grid": {"lr": []}}, r"grid\['lr'\]=\[\] is not allowed"),
        ({"grid": {"gamma": [0.9, 1.5]}}, "gamma"),
        ({"env_grid": {"slip": [0.1, 2.0]}}, "slip"),
        ({"batch_size": 0}, r"batch_size=0 is not allowed; it must be in \[1, 2\]"),
        ({"num_seeds": 0}, "num_seeds=0"),
        ({"env_overrides": {"step_cost": -1.0}}, "step_cost"),
        ({"devices": 3}, "devices=3 does not divide"),
    ],
)
def test_bad_sweeps_are_refused_before_compiling(kwargs, message):
    kwargs = {"grid": {"lr": [1e-3]}, "num_seeds": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        sweep.sweep(ppo.make_train, CONFIG, ENV, ppo.PPOHParams(), **kwargs)


def test_diverged_rows_are_marked_and_the_rest_kept():
    """A row whose numbers stop being finite is named in the table (issue 19); the
    sweep itself goes on, since a diverging learning rate is a result of a sweep."""
    table = sweep.sweep(
        ppo.make_train, CONFIG, ENV, ppo.PPOHParams(), {"lr": [1e-3, 1e30]}, num_seeds=1
    ).table
    assert table["diverged_at"].tolist() == [-1, 0]
    assert table["diverged"][0] == "none" and "parameters" in table["diverged"][1].split()
    assert np.isfinite(table["final_return"][0])
