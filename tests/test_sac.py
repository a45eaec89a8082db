"""SAC: losses on hand-made inputs, bad input, the temperature's pull towards the
entropy target, and the probes with discrete and with continuous actions."""

import math
from dataclasses import replace
from types import SimpleNamespace

import agents_common as common
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import running_stats
from jaxrl import replay, rollout
from jaxrl.agents import sac, td3
from jaxrl.distributions import Categorical
from jaxrl.experiment import final_returns

# brax.training's SAC on brax:walker2d with its published settings, 204,800 env steps,
# spring physics, greedy evaluation (mean of 3 seeds: 65.1 / 380.3 / 380.9; 2-core
# Xeon, 2026-12-07; python experiments/bench_locomotion.py --algo sac --envs walker2d
# --steps 204800 --out runs/bench-sac-walker2d).
BRAX_SAC_WALKER2D = 275.5

PROBE_CONFIG = sac.SACConfig(
    num_envs=8,
    total_steps=8 * 1500,
    learning_starts=400,
    buffer_size=2000,
    minibatch_size=64,
    hidden_sizes=(32, 32),
    autotune=False,
)
# A small fixed temperature: the probes' values are then (nearly) the unregularised ones.
PROBE_HP = sac.SACHParams(lr=1e-2, gamma=0.9, tau=0.05, alpha=0.01)


def stub_networks(logits, q):
    """Discrete 'networks' with fixed outputs: policy logits ``[B, A]``, critics ``[K, B, A]``."""
    actor = SimpleNamespace(apply=lambda params, obs: Categorical(jnp.asarray(logits)))
    critics = SimpleNamespace(apply=lambda params, obs: jnp.asarray(q), num_actions=2)
    return SimpleNamespace(actor=actor, critics=critics)


def batch(reward, terminated, truncated):
    n = len(reward)
    return replay.Experience(
        jnp.zeros((n, 1)),
        jnp.array([0, 1] * (n // 2), jnp.int32),
        jnp.asarray(reward, jnp.float32),
        jnp.asarray(terminated),
        jnp.asarray(truncated),
        jnp.zeros((n, 1)),
    )


P = np.array([0.25, 0.75])
Q = [[[1.0, 4.0], [1.0, 4.0]], [[2.0, 3.0], [2.0, 3.0]]]  # two critics; their min is [1, 3]


def test_discrete_soft_targets_are_exact_expectations():
    networks = stub_networks(np.log([P, P]), Q)
    alpha, gamma = 0.5, 0.9
    # V(s') = sum_a pi(a) (min_i Q_i(s', a) - alpha log pi(a))
    v = 0.25 * (1 - 0.5 * math.log(0.25)) + 0.75 * (3 - 0.5 * math.log(0.75))
    got = sac.soft_targets(networks, None, None, alpha, batch([1.0, 2.0], [False, True],
                           [True, False]), gamma, jax.random.key(0))  # fmt: skip
    # truncated: bootstraps; terminated: the reward alone
    np.testing.assert_allclose(got, [1.0 + gamma * v, 2.0], rtol=1e-6)


def test_reward_scale_multiplies_the_reward_alone():
    networks = stub_networks(np.log([P, P]), Q)
    v = 0.25 * (1 - 0.5 * math.log(0.25)) + 0.75 * (3 - 0.5 * math.log(0.75))
    got = sac.soft_targets(networks, None, None, 0.5, batch([1.0, 2.0], [False, True],
                           [True, False]), 0.9, jax.random.key(0), 10.0)  # fmt: skip
    np.testing.assert_allclose(got, [10.0 + 0.9 * v, 20.0], rtol=1e-6)


def test_replay_keeps_raw_observations_and_samples_them_normalised():
    """normalize_obs with replay (brax.training's SAC): the buffer holds what the env
    returned, and each sampled batch is normalised with the newest statistics."""
    config = sac.SACConfig(num_envs=4, rollout_len=8, total_steps=64, learning_starts=0,
                           buffer_size=64, minibatch_size=16, normalize_obs=True)  # fmt: skip
    env, params = envs.make("gymnax:Pendulum-v1")
    venv = rollout.batched_env(rollout.unit_action_env(env, params), 4, None, True)
    buffer = replay.Replay(4, 64, 16)
    loop = replay.OffPolicyLoop(venv, params, buffer, config)
    carry = rollout.init_carry(venv, params, jax.random.key(0), True, False)

    def act(keys, obs, first, policy_carry):
        return jnp.zeros((4, 1)), None, policy_carry

    def learn_step(learner, batch, key, step):
        return learner, {"obs": batch.obs, "next_obs": batch.next_obs}

    _, carry, buffer_state, stats = jax.jit(loop.update, static_argnums=(0, 1))(
        act, learn_step, (), carry, buffer.init(replay.example_step(venv, params)),
        jax.random.key(1), jnp.int32(0),
    )  # fmt: skip
    stored = buffer_state.experience.obs[:, :8].reshape(-1, 3)
    # Pendulum observes (cos, sin, velocity): raw rows lie on the unit circle
    np.testing.assert_allclose(np.hypot(stored[:, 0], stored[:, 1]), 1.0, rtol=1e-5)
    candidates = np.asarray(running_stats.normalize(carry.norm.obs, stored))
    for sampled in np.asarray(stats["obs"]):
        assert np.abs(candidates - sampled[None]).max(axis=1).min() < 1e-6
    assert np.abs(np.hypot(stats["obs"][:, 0], stats["obs"][:, 1]) - 1.0).max() > 0.1


@pytest.mark.parametrize("agent", [sac, td3], ids=["sac", "td3"])
def test_policy_applies_the_observation_statistics(agent):
    """SAC's and TD3's greedy policies see observations as their networks learnt them."""
    config_class = sac.SACConfig if agent is sac else td3.TD3Config
    config = config_class(num_envs=2, rollout_len=4, total_steps=16, learning_starts=0,
                          buffer_size=16, minibatch_size=4, hidden_sizes=(8,),
                          normalize_obs=True)  # fmt: skip
    hp = sac.SACHParams() if agent is sac else td3.TD3HParams()
    env, params = envs.make("gymnax:Pendulum-v1")
    state = agent.make_train(config, env, params).start(jax.random.key(0), hp)
    obs = jnp.array([[1.0, 0.0, 3.0]])
    actor = agent.make_network(config, env, params).actor

    def greedy(x):
        out = actor.apply(state.params["actor"], x)
        return out.mode() if agent is sac else out

    want = greedy(running_stats.normalize(state.env.norm.obs, obs))
    got = agent.make_policy(config, env, params, state)(jax.random.key(0), obs)
    np.testing.assert_allclose(got, 2.0 * want, rtol=1e-4)  # Pendulum's torque is in [-2, 2]
    raw = greedy(obs)
    assert np.abs(want - raw).max() > 1e-2 * np.abs(want).max()  # the statistics matter here


def test_discrete_actor_loss_and_entropy():
    networks = stub_networks(np.log([P, P]), Q)
    loss, entropy = sac.actor_loss(None, networks, None, jnp.zeros((2, 1)), 0.5, None)
    want = 0.25 * (0.5 * math.log(0.25) - 1) + 0.75 * (0.5 * math.log(0.75) - 3)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(entropy, -(P * np.log(P)).sum(), rtol=1e-6)


def test_critic_loss_sums_critics_and_takes_the_replayed_action():
    networks = stub_networks(np.zeros((2, 2)), Q)
    # Replayed actions 0 and 1: Q_0 = [1, 4], Q_1 = [2, 3]; targets [0, 0].
    loss, q = sac.critic_loss(None, networks, batch([0.0, 0.0], [False] * 2, [False] * 2),
                              jnp.zeros(2))  # fmt: skip
    np.testing.assert_allclose(q, [[1.0, 4.0], [2.0, 3.0]])
    np.testing.assert_allclose(loss, 0.5 * (1 + 16) / 2 + 0.5 * (4 + 9) / 2)


def test_temperature_falls_while_the_policy_is_more_random_than_the_target():
    grad = jax.grad(sac.temperature_loss)(jnp.float32(0.0), jnp.array([1.0, 2.0]), 0.5)
    np.testing.assert_allclose(grad, 1.5 - 0.5)  # d/d log_alpha: mean(H) - target > 0
    grad = jax.grad(sac.temperature_loss)(jnp.float32(0.0), jnp.array([-1.0]), 0.5)
    assert grad < 0


def test_default_entropy_targets():
    for name, want in [("gymnax:Pendulum-v1", -1.0), ("gymnax:CartPole-v1", 0.7 * math.log(2))]:
        env, params = envs.make(name)
        networks = sac.make_network(sac.SACConfig(), env, params)
        assert sac.target_entropy(sac.SACConfig(), networks) == pytest.approx(want)
    assert sac.target_entropy(sac.SACConfig(target_entropy=0.1), networks) == 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"buffer_size": 64, "minibatch_size": 128}, "SACConfig.buffer_size=64 is smaller"),
        ({"total_steps": 10_000, "learning_starts": 10_000}, "learning_starts=10000 is not all"),
        ({"num_critics": 0}, "SACConfig.num_critics=0 is not allowed"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sac.SACConfig(**kwargs)


@pytest.mark.parametrize(
    "field, value", [("tau", 0.0), ("tau", 1.5), ("alpha", 0.0), ("gamma", 1.5)]
)
def test_bad_hparams_raise(field, value):
    with pytest.raises(ValueError, match=f"SACHParams.{field}={value} is not allowed"):
        sac.SACHParams(**{field: value}).validate()


@pytest.fixture(scope="module")
def probe_runs():
    """Probes 1-5, discrete and continuous, 2 seeds each."""
    # With a single action and obs 0, a ReLU critic is its output bias alone (the hidden
    # units sit at 0, where ReLU has no gradient): Adam moves it at most lr per step, so
    # discrete Probe-1 needs more updates to reach V = 10.
    longer = replace(PROBE_CONFIG, total_steps=8 * 2500)
    runs = {
        (index, continuous): (index, longer if index == 1 and not continuous else PROBE_CONFIG,
                              continuous)
        for index in range(1, 6)
        for continuous in (False, True)
    }  # fmt: skip
    return common.train_probes(sac, runs, PROBE_HP)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_probes(probe_runs, continuous):
    runs = {index: probe_runs[index, continuous] for index in range(1, 6)}
    common.check_probe1_value(runs[1], atol=1.0)  # bootstraps through truncation
    common.check_probe2_value(runs[2], atol=0.2)
    common.check_probe3_value(runs[3], atol=0.15)
    if continuous:
        common.check_continuous_probe4_and_5_actions(runs[4], runs[5], atol=0.1)
    else:
        common.check_probe4_and_5_actions(runs[4], runs[5], min_prob=0.9)


def test_temperature_brings_entropy_to_its_target():
    # Probe-4 pays for action 1: without a temperature the policy would become greedy
    # (entropy 0); tuned, its entropy settles at the target instead.
    config = replace(PROBE_CONFIG, autotune=True, target_entropy=0.3)
    run = common.train_probes(sac, {4: (4, config)}, PROBE_HP.replace(alpha=1.0))[4]
    entropy = np.asarray(run.metrics["entropy"][:, -100:]).mean(1)
    np.testing.assert_allclose(entropy, 0.3, atol=0.1)


def test_infinite_action_bounds_raise():
    env, params = envs.make("ContinuousProbe-4")
    with pytest.raises(ValueError, match="SAC needs finite action bounds"):
        sac.make_train(PROBE_CONFIG, common.UnboundedActions(env), params)


@pytest.mark.slow
def test_sac_pendulum_50k():
    env, params = envs.make("gymnax:Pendulum-v1")
    config = sac.SACConfig(total_steps=50_000, hidden_sizes=(64, 64), learning_starts=1000)
    train = jax.jit(jax.vmap(sac.make_train(config, env, params), in_axes=(0, None)))
    _, metrics = train(common.learning_keys(4), sac.SACHParams(lr=1e-3))
    common.report("SAC Pendulum-v1 final return", final_returns(metrics).mean(), ">= -250")
    assert final_returns(metrics).mean() >= -250, final_returns(metrics)


@pytest.mark.slow
def test_sac_brax_walker2d_preset():
    # Issue 18's SAC locomotion check: the sac@brax:walker2d preset (brax.training's SAC
    # settings for walker2d mirrored, spring physics, 204,800 env steps) reaches at
    # least brax.training's own SAC on the same budget and machine, whose 3 seeds
    # averaged BRAX_SAC_WALKER2D (experiments/bench_locomotion.py --algo sac). One seed
    # (CI's time is short: 173 s here), evaluated greedily on 8 full episodes: 465.8 on
    # seed set 0. Single evaluations swing at this budget: of the 8 seeds measured on
    # 2026-12-07 (benchmark, preset, this), 7 ended above the target, one at 107.
    from jaxrl import presets
    from jaxrl.evaluate import evaluate

    preset = presets.get("sac", "brax:walker2d")
    config, hp = preset.apply(sac.SACConfig(), sac.SACHParams())
    env, params = envs.make(preset.env, **preset.env_params)
    eval_env, _ = envs.make(preset.env, autoreset=False, **preset.env_params)
    train = sac.make_train(config, env, params)

    def train_and_evaluate(key):
        state, _ = train(key, hp)
        act = sac.make_policy(config, env, params, state)
        return evaluate(eval_env, params, act, jax.random.key(1), 8, 1000).mean()

    greedy = float(jax.jit(train_and_evaluate)(common.learning_keys(1)[0]))
    common.report("SAC brax:walker2d preset greedy return", greedy, f">= {BRAX_SAC_WALKER2D}")
    assert greedy >= BRAX_SAC_WALKER2D, greedy
