"""PQN: the loss on hand-made inputs, bad input, probes, and (slow) CartPole."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl.agents import pqn
from jaxrl.experiment import final_returns

PROBE_CONFIG = pqn.PQNConfig(
    num_envs=16, rollout_len=16, total_steps=16 * 16 * 150, num_minibatches=4, hidden_sizes=(32,)
)
PROBE_HP = pqn.PQNHParams(lr=1e-2, gamma=0.9, td_lambda=0.9, eps_decay_fraction=0.3)


def test_loss_regresses_taken_action_on_fixed_targets():
    params = jnp.array([[1.0, 3.0]])  # a 'network' whose Q-values are its parameters

    def apply(params, obs):
        return jnp.broadcast_to(params, (obs.shape[0], 2))

    batch = pqn.Batch(jnp.zeros((2, 1)), jnp.array([0, 1]), jnp.array([2.0, 3.0]))
    grads, stats = jax.grad(pqn.pqn_loss, has_aux=True)(params, apply, batch)
    # errors: Q(a=0) - 2 = -1 and Q(a=1) - 3 = 0: loss 0.5 * mean(1, 0) = 0.25
    np.testing.assert_allclose(stats["loss"], 0.25)
    # gradient only on the taken actions, none through the targets: -1 / 2 on action 0
    np.testing.assert_allclose(grads, [[-0.5, 0.0]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_minibatches": 3}, "num_minibatches=3 does not divide num_envs \\* rollout_len"),
        ({"num_epochs": 0}, "num_epochs=0 is not allowed"),
        ({"normalize_obs": True}, "normalize_obs=True is not supported"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pqn.PQNConfig(**kwargs)


def test_bad_hparams_and_continuous_env_raise():
    with pytest.raises(ValueError, match="PQNHParams.td_lambda=1.5 is not allowed"):
        pqn.PQNHParams(td_lambda=1.5).validate()
    env, params = envs.make("gymnax:Pendulum-v1")
    with pytest.raises(ValueError, match="PQN needs a Discrete action space"):
        pqn.make_train(pqn.PQNConfig(), env, params)


@pytest.fixture(scope="module")
def probe_runs():
    """Probes 1-5, two seeds each, in one compiled call per probe."""
    out = {}
    for index in range(1, 6):
        overrides = {"max_episode_steps": 8} if index == 1 else {}
        env, params = envs.make(f"Probe-{index}", **overrides)
        train = jax.vmap(pqn.make_train(PROBE_CONFIG, env, params), in_axes=(0, None))
        state, metrics = jax.jit(train)(jax.random.split(jax.random.key(index), 2), PROBE_HP)
        out[index] = (pqn.make_network(PROBE_CONFIG, env, params), state, metrics)
    return out


def q_values(run, obs):
    network, state, _ = run
    return np.asarray(jax.vmap(network.apply, in_axes=(0, None))(state.params, obs))


def test_probe1_bootstraps_through_truncation(probe_runs):
    # reward 1 forever, time limit 8: Q = 1 / (1 - 0.9) = 10, not ~5.7 as if terminal
    q = q_values(probe_runs[1], jnp.zeros((1, 1)))
    np.testing.assert_allclose(q[:, 0, 0], 10.0, atol=1.0)


def test_probe2_and_3_values(probe_runs):
    q = q_values(probe_runs[2], jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(q[..., 0], [[-1.0, 1.0]] * 2, atol=0.2)
    q = q_values(probe_runs[3], jnp.array([[0.0], [1.0]]))
    np.testing.assert_allclose(q[..., 0], [[0.9, 1.0]] * 2, atol=0.15)


def test_probe4_and_5_greedy_action(probe_runs):
    q = q_values(probe_runs[4], jnp.zeros((1, 1)))
    assert (q[:, 0, 1] > q[:, 0, 0]).all()
    q = q_values(probe_runs[5], jnp.array([[-1.0], [1.0]]))
    assert (q[:, 0, 0] > q[:, 0, 1]).all() and (q[:, 1, 1] > q[:, 1, 0]).all()


@pytest.mark.slow
def test_pqn_cartpole_500k():
    env, params = envs.make("gymnax:CartPole-v1")
    config = pqn.PQNConfig(total_steps=500_000)
    train = jax.jit(jax.vmap(pqn.make_train(config, env, params), in_axes=(0, None)))
    _, metrics = train(jax.random.split(jax.random.key(0), 8), pqn.PQNHParams())
    assert final_returns(metrics).mean() >= 475, final_returns(metrics)
