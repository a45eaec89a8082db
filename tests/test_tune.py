"""jaxrl tune: the ladder of budgets, the search space, and successive halving whose
survivors continue their runs (equal to training the winner alone)."""

import json
import tomllib

import jax
import numpy as np
import pytest

import envs
from jaxrl import cli, experiment, presets, tune
from jaxrl.agents import ppo

ENV = "gymnax:CartPole-v1"
CONFIG = ppo.PPOConfig(num_envs=4, rollout_len=32, num_minibatches=2, total_steps=4 * 32 * 8)


def test_budgets_are_a_geometric_ladder_ending_at_the_whole_run():
    assert tune.budgets(27, 3, 3) == [3, 9, 27]
    assert tune.budgets(8, 3, 2) == [2, 4, 8]
    assert tune.budgets(10, 3, 3) == [1, 3, 10]
    with pytest.raises(ValueError, match="rounds=4 with eta=3 does not fit a run of 3 updates"):
        tune.budgets(3, 4, 3)


def test_space_parsing_and_draws():
    hp = ppo.PPOHParams()
    assert set(tune.parse_space((), hp)) == {
        "lr", "gae_lambda", "clip_eps", "ent_coef", "max_grad_norm"
    }  # fmt: skip
    space = tune.parse_space(("lr=log:1e-4:1e-2", "clip_eps"), hp)
    assert space == {"lr": tune.Dim("log", 1e-4, 1e-2), "clip_eps": tune.DEFAULT_SPACE["clip_eps"]}
    for bad, message in [
        (("nope=0:1",), "'nope' is not a hyperparameter of PPOHParams"),
        (("lr=log:0:1",), "low=0.0 is not allowed on a log scale"),
        (("lr=2:1",), "need finite low < high"),
        (("lr=cube:1:2",), "scale='cube' is not allowed"),
        (("vf_coef=1",), "write SCALE:LOW:HIGH"),
    ]:
        with pytest.raises(ValueError, match=message):
            tune.parse_space(bad, hp)
    rows = tune.draw(space, 16, seed=3)
    assert rows == tune.draw(space, 16, seed=3) and rows != tune.draw(space, 16, seed=4)
    lrs = np.array([row["lr"] for row in rows])
    assert ((lrs >= 1e-4) & (lrs <= 1e-2)).all() and (lrs < 1e-3).sum() in range(6, 11)
    assert all(float(f"{row['clip_eps']:.3g}") == row["clip_eps"] for row in rows)


@pytest.fixture(scope="module")
def searched():
    space = tune.parse_space(("lr=log:1e-4:3e-3", "clip_eps"), ppo.PPOHParams())
    return tune.tune(ppo.make_train, CONFIG, ENV, ppo.PPOHParams(), space, num_candidates=4,
                     num_seeds=2, eta=2, rounds=2, seed=0)  # fmt: skip


def test_halving_keeps_the_best_half_and_picks_the_best_finalist(searched):
    table = searched.table
    assert searched.budgets == [4, 8] and len(table) == 4
    assert table["round_reached"].tolist().count(1) == 2
    finalists = table[table["round_reached"] == 1]
    dropped = table[table["round_reached"] == 0]
    assert finalists["score_round_0"].min() >= dropped["score_round_0"].max()
    best = table[table["best"]]
    assert len(best) == 1 and best["score_round_1"].item() == finalists["score_round_1"].max()
    assert searched.best == {k: best[k].item() for k in ("lr", "clip_eps")}
    assert searched.info["candidates_per_round"] == [4, 2]
    assert searched.info["search_env_steps"] == (4 * 4 + 2 * 4) * 2 * 4 * 32


def test_a_survivor_continues_its_run_it_is_not_retrained(searched):
    """The winner's last score equals the score of its hyperparameters trained alone for
    the whole run on the same seeds (the search's keys)."""
    env, params = envs.make(ENV)
    hp = ppo.PPOHParams().replace(**searched.best)
    keys = jax.random.split(jax.random.key(0), 2)
    metrics = jax.jit(jax.vmap(ppo.make_train(CONFIG, env, params), in_axes=(0, None)))(keys, hp)[1]
    alone = experiment.final_returns(jax.device_get(metrics), tune.SCORE_FRACTION).mean()
    best = searched.table[searched.table["best"]]
    np.testing.assert_allclose(best["score_round_1"].item(), alone, rtol=1e-4)


def test_jaxrl_tune_writes_the_table_and_a_preset_entry(tmp_path):
    out = tmp_path / "tune"
    argv = ["tune", "ppo", "--env", ENV, "--preset", "none", "--num-envs", "4",
            "--rollout-len", "32", "--num-minibatches", "2", "--total-steps", "1024",
            "--num-candidates", "4", "--eta", "2", "--rounds", "2", "--num-seeds", "1",
            "--verify-seeds", "2", "--space", "lr", "--out", str(out)]  # fmt: skip
    summary = cli.run(argv)
    assert {p.name for p in out.iterdir()} >= {"tune.csv", "tune.png", "summary.json",
                                                "preset.toml", "verify"}  # fmt: skip
    (entry,) = tomllib.loads((out / "preset.toml").read_text())["preset"]
    presets._check(entry, "preset.toml")
    assert entry["hparams"] == summary["best"] and entry["result"]["seeds"] == 2
    assert entry["config"]["total_steps"] == 1024 and "--seed 1000" in entry["result"]["command"]
    assert entry["result"]["mean"] == round(summary["verified"]["eval_return_mean"], 1)
    assert json.loads((out / "summary.json").read_text())["command"].startswith("jaxrl tune ppo")
