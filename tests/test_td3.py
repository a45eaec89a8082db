"""TD3 and DDPG: target smoothing, delayed actor updates, bad input, and the
continuous-action probes."""

from types import SimpleNamespace

import agents_common as common
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import envs
from jaxrl import replay
from jaxrl.agents import td3
from jaxrl.experiment import final_returns

PROBE_CONFIG = td3.TD3Config(
    num_envs=8,
    total_steps=8 * 2500,
    learning_starts=400,
    buffer_size=2000,
    minibatch_size=64,
    hidden_sizes=(32, 32),
)
PROBE_HP = td3.TD3HParams(lr=1e-2, gamma=0.9, tau=0.05)


def one_step_batch(n):
    """Reward 1, no episode ends, random observations and actions."""
    obs = jax.random.normal(jax.random.key(2), (n, 1))
    action = jax.random.uniform(jax.random.key(3), (n, 1), minval=-1, maxval=1)
    flags = jnp.zeros(n, bool)
    return replay.Experience(obs, action, jnp.ones(n), flags, flags, obs)


def test_target_actions_are_smoothed_with_clipped_noise_inside_the_bounds():
    # The stub critics return the target action itself, so the target reveals a'.
    actor = SimpleNamespace(apply=lambda params, obs: jnp.full((obs.shape[0], 1), 0.8))
    critics = SimpleNamespace(apply=lambda params, obs, action: action[None, :, 0])
    networks = SimpleNamespace(actor=actor, critics=critics)
    hp = td3.TD3HParams(gamma=1.0, target_noise=10.0, target_noise_clip=0.5)
    target = td3.td3_targets(networks, {"actor": None, "critics": None}, one_step_batch(4096),
                             hp, jax.random.key(0))  # fmt: skip
    a_next = np.asarray(target) - 1.0
    # mu' = 0.8 plus noise clipped to +-0.5, then clipped to [-1, 1]: a' in [0.3, 1.0],
    # with nearly half the mass on each end (the noise std is far beyond the clip).
    assert a_next.min() == pytest.approx(0.3) and a_next.max() == pytest.approx(1.0)
    assert abs(np.isclose(a_next, 0.3).mean() - 0.48) < 0.05
    # DDPG: no smoothing, a' = mu'.
    target = td3.td3_targets(networks, {"actor": None, "critics": None}, one_step_batch(8),
                             hp.replace(target_noise=0.0), jax.random.key(0))  # fmt: skip
    np.testing.assert_allclose(np.asarray(target) - 1.0, 0.8, rtol=1e-6)


def test_actor_and_targets_move_only_every_policy_delay_steps():
    env, params = envs.make("ContinuousProbe-4")
    config = td3.TD3Config(policy_delay=2, hidden_sizes=(8,))
    networks = td3.make_network(config, env, params)
    net_params = networks.init(jax.random.key(0), jnp.zeros((1, 1)))
    tx = optax.adam(1e-2)
    learner = td3.Learner(net_params, net_params, (tx.init(net_params["actor"]),
                          tx.init(net_params["critics"])))  # fmt: skip
    step = jax.jit(lambda learner, s: td3.learner_step(
        networks, tx, config, td3.TD3HParams(tau=0.5), learner, one_step_batch(16),
        jax.random.key(1), s))  # fmt: skip
    changed = lambda a, b: not all(jax.tree.leaves(jax.tree.map(np.allclose, a, b)))
    after, stats = step(learner, jnp.int32(1))  # not a multiple of 2: critics only
    assert changed(after.params["critics"], net_params["critics"])
    assert not changed(after.params["actor"], net_params["actor"])
    assert not changed(after.target_params, net_params) and stats["actor_loss"] == 0
    after, stats = step(learner, jnp.int32(2))  # actor and both targets move
    assert changed(after.params["actor"], net_params["actor"])
    assert changed(after.target_params["actor"], net_params["actor"])
    assert changed(after.target_params["critics"], net_params["critics"])


def test_ddpg_is_a_configuration():
    config, hp = td3.ddpg(hidden_sizes=(32,))
    assert (config.num_critics, config.policy_delay, hp.target_noise) == (1, 1, 0.0)
    assert config.hidden_sizes == (32,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"buffer_size": 64, "minibatch_size": 128}, "TD3Config.buffer_size=64 is smaller"),
        ({"total_steps": 10_000, "learning_starts": 20_000}, "learning_starts=20000 is not all"),
        ({"policy_delay": 0}, "TD3Config.policy_delay=0 is not allowed"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        td3.TD3Config(**kwargs)


@pytest.mark.parametrize("tau", [0.0, 1.5])
def test_tau_outside_unit_interval_raises(tau):
    with pytest.raises(ValueError, match=f"TD3HParams.tau={tau} is not allowed"):
        td3.TD3HParams(tau=tau).validate()


def test_discrete_env_raises():
    env, params = envs.make("gymnax:CartPole-v1")
    with pytest.raises(ValueError, match="TD3 needs a continuous"):
        td3.make_train(td3.TD3Config(), env, params)


@pytest.fixture(scope="module")
def probe_runs():
    """TD3 on continuous probes 1-5 and DDPG on 1 and 5, 2 seeds each."""
    ddpg_config, ddpg_hp = td3.ddpg(**{
        f: getattr(PROBE_CONFIG, f) for f in ("num_envs", "total_steps", "learning_starts",
                                              "buffer_size", "minibatch_size", "hidden_sizes")
    })  # fmt: skip
    runs = common.train_probes(td3, {i: (i, PROBE_CONFIG, True) for i in range(1, 6)}, PROBE_HP)
    ddpg_hp = ddpg_hp.replace(lr=PROBE_HP.lr, gamma=PROBE_HP.gamma, tau=PROBE_HP.tau)
    ddpg = common.train_probes(td3, {i: (i, ddpg_config, True) for i in (1, 5)}, ddpg_hp)
    return runs, ddpg


def test_probes(probe_runs):
    runs, _ = probe_runs
    common.check_probe1_value(runs[1], atol=1.0)  # bootstraps through truncation
    common.check_probe2_value(runs[2], atol=0.2)
    common.check_probe3_value(runs[3], atol=0.15)
    common.check_continuous_probe4_and_5_actions(runs[4], runs[5], atol=0.1)


def test_ddpg_probes(probe_runs):
    _, ddpg = probe_runs
    common.check_probe1_value(ddpg[1], atol=1.0)
    _, action = common.values_and_probs(ddpg[5], jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(action[..., 0], [[-0.5, 0.5]] * 2, atol=0.1)


@pytest.mark.slow
def test_td3_pendulum_50k():
    env, params = envs.make("gymnax:Pendulum-v1")
    config = td3.TD3Config(total_steps=50_000, hidden_sizes=(64, 64), learning_starts=1000)
    train = jax.jit(jax.vmap(td3.make_train(config, env, params), in_axes=(0, None)))
    _, metrics = train(common.learning_keys(4), td3.TD3HParams(lr=1e-3))
    common.report("TD3 Pendulum-v1 final return", final_returns(metrics).mean(), ">= -250")
    assert final_returns(metrics).mean() >= -250, final_returns(metrics)
