"""PQN: the loss on hand-made inputs, bad input, probes, and (slow) CartPole."""

import dataclasses

import agents_common as common
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


def test_next_values_max_expected_and_sarsa():
    # T=3 steps of one env, 2 actions; the episode ends after step 0.
    q_next = jnp.array([[[1.0, 3.0]], [[2.0, 0.0]], [[5.0, 4.0]]])
    action = jnp.array([[0], [1], [0]])
    done = jnp.array([[True], [False], [False]])
    eps = 0.2  # greedy action gets 0.9, the other 0.1
    got = {
        k: pqn.next_values(q_next, action, done, eps, k)[:, 0] for k in ("max", "expected", "sarsa")
    }
    np.testing.assert_allclose(got["max"], [3.0, 2.0, 5.0])
    expected = [0.1 * 1 + 0.9 * 3, 0.9 * 2 + 0.1 * 0, 0.9 * 5 + 0.1 * 4]
    np.testing.assert_allclose(got["expected"], expected, rtol=1e-6)
    # sarsa: step 0 ended its episode and step 2 is the last, so both take the expected
    # value; step 1 takes Q of the action taken at step 2 (action 0): 2.
    np.testing.assert_allclose(got["sarsa"], [expected[0], 2.0, expected[2]], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_minibatches": 3}, "num_minibatches=3 does not divide num_envs \\* rollout_len"),
        ({"num_epochs": 0}, "num_epochs=0 is not allowed"),
        ({"normalize_obs": True}, "normalize_obs=True is not supported"),
        ({"bootstrap": "mean"}, "bootstrap='mean' is not allowed"),
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
    # SARSA is PQN's machinery, but its errors name it (they said PQN and PQNConfig).
    with pytest.raises(ValueError, match="^SARSA needs a Discrete action space"):
        pqn.SARSA.make_train(pqn.SARSAConfig(), env, params)
    with pytest.raises(ValueError, match="^SARSAConfig.num_minibatches=3 does not divide"):
        pqn.SARSAConfig(num_minibatches=3)


@pytest.fixture(scope="module")
def probe_runs():
    return common.train_probes(pqn, {i: (i, PROBE_CONFIG) for i in range(1, 6)}, PROBE_HP)


def test_probes(probe_runs):
    common.check_probe1_value(probe_runs[1], atol=1.0)  # bootstraps through truncation
    common.check_probe2_value(probe_runs[2], atol=0.2)
    common.check_probe3_value(probe_runs[3], atol=0.15)
    common.check_probe4_and_5_actions(probe_runs[4], probe_runs[5], min_prob=0.9)


@pytest.fixture(scope="module")
def sarsa_probe_runs():
    """Expected SARSA on probes 1, 4 and 5, and SARSA on the truncation probe."""
    expected = dataclasses.replace(PROBE_CONFIG, bootstrap="expected")
    runs = {i: (i, expected) for i in (1, 4, 5)}
    runs["sarsa-1"] = (1, dataclasses.replace(PROBE_CONFIG, bootstrap="sarsa"))
    return common.train_probes(pqn, runs, PROBE_HP)


def test_sarsa_probes(sarsa_probe_runs):
    # One action on Probe-1, so on- and off-policy values agree: 10 through truncation.
    common.check_probe1_value(sarsa_probe_runs[1], atol=1.0)
    common.check_probe1_value(sarsa_probe_runs["sarsa-1"], atol=1.0)
    common.check_probe4_and_5_actions(sarsa_probe_runs[4], sarsa_probe_runs[5], min_prob=0.9)


@pytest.mark.slow
def test_pqn_cartpole_500k():
    config = pqn.PQNConfig(total_steps=500_000)
    common.check_cartpole_final_return(pqn, config, pqn.PQNHParams(), minimum=475)


@pytest.mark.slow
def test_expected_sarsa_fourrooms_within_10_percent_of_optimum():
    # 64 envs x 16 steps per update. With 16 x 64 (the same 1,024 steps per update)
    # a greedy loop that never reaches the goal caught all 16 envs at once for whole
    # updates (every episode timed out), so those updates learnt from the loop alone,
    # and a seed caught there when the decayed learning rate neared 0 stayed there:
    # seed sets 0 / 1 / 2 gave 0.993 / 0.845 / 0.981 of the optimum. With 64 envs:
    # 0.996 / 0.984 / 0.987, and 0.982 on set 3, every seed >= 0.927 (--seed-set K,
    # 2026-12-07). Also tried: eps_end 0.05 (0.981 / 0.980 / 0.915 / 0.984, one seed
    # at 0.495); no lr decay (set 1: 0.751).
    env, params = envs.make("GridWorld-FourRooms")
    config = pqn.PQNConfig(
        num_envs=64, rollout_len=16, total_steps=300_000, num_minibatches=8, bootstrap="expected"
    )
    hp = pqn.PQNHParams(lr=1e-3, eps_decay_fraction=0.3, eps_end=0.01)
    train = jax.jit(jax.vmap(pqn.make_train(config, env, params), in_axes=(0, None)))
    _, metrics = train(common.learning_keys(8), hp)
    # The optimum: goal reward less the step cost of a shortest path (breadth-first
    # search on the map; FourRooms has no slip by default).
    optimum = float(params.goal_reward) - float(
        params.step_cost
    ) * env.unwrapped.shortest_path_length(params)
    ratio = final_returns(metrics).mean() / optimum
    common.report("Expected SARSA FourRooms return / optimum", ratio, ">= 0.9")
    assert final_returns(metrics).mean() >= 0.9 * optimum, (final_returns(metrics), optimum)
