"""Trainer.log_every: one row of metrics per k updates, returns summed, the rest averaged."""

import dataclasses

import jax
import numpy as np
import pytest

import envs
from jaxrl.agents import ppo

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
