"""Trainer.log_every: one row of metrics per k updates, returns summed, the rest averaged;
and the health check that stops a run whose numbers stop being finite."""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl import checkpoint, training
from jaxrl.agents import ppo
from jaxrl.training import Trainer

CONFIG = ppo.PPOConfig(num_envs=4, rollout_len=16, total_steps=4 * 16 * 6, num_minibatches=2)


def test_log_every_sums_returns_and_averages_the_rest_of_the_same_run():
    env, params = envs.make("gymnax:CartPole-v1")
    train = ppo.make_train(CONFIG, env, params)
    key, hp = jax.random.key(0), ppo.PPOHParams()
    state, every = jax.jit(train)(key, hp)
    logged_state, logged = jax.jit(dataclasses.replace(train, log_every=3))(key, hp)
    # Logging changes what is kept, not what is trained.
    pairs = zip(jax.tree.leaves(logged_state), jax.tree.leaves(state), strict=True)
    for a, b in pairs:
        if not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            np.testing.assert_array_equal(a, b)
    for name, values in every.items():
        rows = np.asarray(values).reshape(2, 3)
        expected = rows.sum(1) if name in ("episodes", "episode_return_sum") else rows.mean(1)
        np.testing.assert_allclose(logged[name], expected, rtol=1e-6, err_msg=name)


def test_log_every_must_divide_the_updates():
    env, params = envs.make("gymnax:CartPole-v1")
    train = ppo.make_train(CONFIG, env, params)
    with pytest.raises(ValueError, match="log_every=4 is not allowed; .* divide the run's 6"):
        dataclasses.replace(train, log_every=4)
    with pytest.raises(ValueError, match="chunk num_updates=2 is not allowed"):
        dataclasses.replace(train, log_every=3).chunk(2)


class Toy(NamedTuple):
    params: jax.Array


def toy_trainer(bad_from: int, what: str) -> Trainer:
    """8 updates; from update ``bad_from`` on its loss (``what="loss"``) or its
    parameters (``"params"``) are NaN."""

    def step(state, hparams, update):
        bad = update >= bad_from
        params = jnp.where(bad & (what == "params"), jnp.nan, state.params + 1.0)
        loss = jnp.where(bad & (what == "loss"), jnp.nan, 1.0)
        return Toy(params), {"loss": loss, "episodes": jnp.float32(0.0)}

    return Trainer(lambda key, hparams: Toy(jnp.zeros(3)), step, num_updates=8)


@pytest.mark.parametrize("what, quantity", [("loss", "loss"), ("params", "parameters")])
def test_a_diverged_chunk_stops_training_before_its_checkpoint(tmp_path, what, quantity):
    """Non-finite losses or parameters stop the run, name the first bad update and the
    quantity, and leave the newest checkpoint at the last good state (issue 19)."""
    keys = jax.random.split(jax.random.key(0), 3)
    ckpts = checkpoint.Checkpoints(tmp_path, {"run": "toy"})
    trainer = toy_trainer(bad_from=5, what=what)
    with pytest.raises(training.Diverged, match=f"{quantity} not finite in run 0 from update 5"):
        training.train_in_chunks(trainer, keys, None, chunk=2, checkpoints=ckpts)
    assert ckpts.all() == [2, 4]  # the chunk with update 5 was not saved
    with pytest.raises(training.Diverged) as caught:
        training.train_in_chunks(toy_trainer(5, what), keys, None, chunk=8)
    assert [(f.run, f.update) for f in caught.value.faults] == [(0, 5), (1, 5), (2, 5)]
    assert caught.value.last_good is None and quantity in caught.value.faults[0].quantities


def test_faults_reads_intervals_and_every_run():
    metrics = {
        "loss": np.array([[1.0, 1.0, np.inf], [1.0, 1.0, 1.0]]),
        training.HEALTH: np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 1.0]]),
        "episodes": np.zeros((2, 3)),
    }
    found = training.faults(metrics, first_update=10, log_every=4)
    assert found == [training.Fault(0, 18, ("loss",)), training.Fault(1, 14, ("parameters",))]
    assert training.faults({"loss": np.ones((2, 3))}) == []


def test_hyperparameters_are_checked_when_built_and_traced_ones_when_the_run_starts():
    """The README's Python route, jit(vmap(train)) with a bad value, used to train
    silently (issue 19): concrete values are refused when the hyperparameters are
    built, before anything is traced (a sweep's rows too); values that only exist
    inside the program are checked when it runs."""
    env, params = envs.make("gymnax:CartPole-v1")
    train = ppo.make_train(CONFIG, env, params)
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(
        ValueError, match=r"PPOHParams\.lr=-0\.001 is not allowed; it must be in \(0, inf\)"
    ):
        ppo.PPOHParams(lr=-1e-3)
    with pytest.raises(ValueError, match=r"PPOHParams\.lr=inf is not allowed"):
        ppo.PPOHParams(lr=float("inf"))
    rows = jax.tree.map(lambda x: jnp.full((2,), x), ppo.PPOHParams())  # a sweep of 2 rows
    with pytest.raises(ValueError, match=r"PPOHParams\.gamma=\[2\.\] is not allowed"):
        rows.replace(gamma=jnp.array([0.99, 2.0]))

    @jax.jit
    def train_with(keys, lr):  # hyperparameters built from a traced value
        return jax.vmap(train, in_axes=(0, None))(keys, ppo.PPOHParams(lr=lr))

    jax.block_until_ready(train_with(keys, 1e-3))
    refused = r"PPOHParams\.lr=.*is not allowed; it must be in \(0, inf\)"
    with pytest.raises(jax.errors.JaxRuntimeError, match=refused):
        jax.block_until_ready(train_with(keys, -1e-3))
