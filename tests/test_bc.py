"""Behaviour cloning and DAgger, judged by the return of the expert they imitate:
the value-iteration policy of GridWorld-FourRooms (exact), with and without slip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl import planning
from jaxrl.agents import bc, tabular
from jaxrl.evaluate import evaluate

SEEDS = 4


def expert_on(slip: float):
    env, params = envs.make("GridWorld-FourRooms", slip=slip)
    model = env.tabular_model(params)
    solution = planning.value_iteration(model.P, model.R, 0.99)
    return env, params, tabular.table_policy(env, params, solution.policy)


def expert_return(slip: float, expert, params) -> float:
    eval_env, _ = envs.make("GridWorld-FourRooms", autoreset=False, slip=slip)
    returns = jax.jit(lambda key: evaluate(eval_env, params, expert, key, 512, 200))
    return float(returns(jax.random.key(123)).mean())


def clone(env, params, expert, **config):
    config = bc.BCConfig(num_envs=8, rollout_len=100, num_sgd_steps=500, eval_episodes=64, **config)
    train = jax.jit(jax.vmap(bc.make_train(config, env, params, expert), in_axes=(0, None)))
    return train(jax.random.split(jax.random.key(0), SEEDS), bc.BCHParams())


def test_cloning_the_value_iteration_policy_on_four_rooms():
    env, params, expert = expert_on(0.0)
    target = expert_return(0.0, expert, params)
    assert target > 0.5
    state, metrics = clone(env, params, expert)
    learner_return = metrics["episode_return_sum"][:, -1] / metrics["episodes"][:, -1]
    assert float(learner_return.min()) >= 0.95 * target, (learner_return, target)
    assert float(metrics["accuracy"].min()) == 1.0
    # The returned policy acts like the expert on the states it was taught.
    act = bc.make_policy(bc.BCConfig(), env, params, jax.tree.map(lambda x: x[0], state))
    data = jax.tree.map(lambda x: x[0], state.data)
    np.testing.assert_array_equal(act(jax.random.key(0), data.obs[:200]), data.action[:200])


def test_dagger_recovers_the_expert_where_cloning_falls_short_with_slip():
    """With slip the expert's demonstrations miss states the learner then drifts into;
    DAgger labels those. Iteration 0 is plain behaviour cloning."""
    env, params, expert = expert_on(0.2)
    target = expert_return(0.2, expert, params)
    _, metrics = clone(env, params, expert, dagger_iterations=3)
    returns = metrics["episode_return_sum"] / metrics["episodes"]  # [seeds, iterations]
    assert returns.shape == (SEEDS, 4)
    assert float(returns[:, -1].min()) >= 0.95 * target, (returns, target)
    assert float(returns[:, -1].mean()) > float(returns[:, 0].mean())


def test_continuous_cloning_matches_a_linear_expert():
    """ContinuousProbe-5 observes +-1 and rewards 1 - 4 (a - obs / 2)^2; the expert
    a = obs / 2 earns 1."""
    env, params = envs.make("ContinuousProbe-5")

    def expert(key, obs):
        return obs / 2

    config = bc.BCConfig(num_envs=8, rollout_len=32, num_sgd_steps=1_000, eval_episodes=32)
    train = jax.jit(bc.make_train(config, env, params, expert))
    state, metrics = train(jax.random.key(0), bc.BCHParams(lr=3e-3))
    assert float(metrics["episode_return_sum"][-1] / metrics["episodes"][-1]) > 0.98
    obs = jnp.asarray([[-1.0], [1.0]])
    act = bc.make_policy(config, env, params, state)
    np.testing.assert_allclose(act(jax.random.key(0), obs), obs / 2, atol=0.05)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="dagger_iterations=-1"):
        bc.BCConfig(dagger_iterations=-1)
    with pytest.raises(ValueError, match="minibatch_size=0"):
        bc.BCConfig(minibatch_size=0)
    with pytest.raises(ValueError, match="lr=-1"):
        bc.BCHParams(lr=-1.0).validate()
    env, params = envs.make("GridWorld-FourRooms")
    with pytest.raises(ValueError, match=r"actions has shape \(3,\)"):
        tabular.table_policy(env, params, jnp.zeros(3, jnp.int32))
