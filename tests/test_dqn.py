"""DQN: targets on hand-made inputs, bad input, replay, probes, (slow) CartPole and Inventory."""

from dataclasses import replace

import agents_common as common
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import inventory
from jaxrl import presets, replay
from jaxrl.agents import dqn
from jaxrl.exploration import linear_epsilon
from jaxrl.rollout import Transition

PROBE_CONFIG = dqn.DQNConfig(
    num_envs=8,
    total_steps=8 * 2500,
    learning_starts=400,
    buffer_size=2000,
    minibatch_size=64,
    target_update_every=5,
    hidden_sizes=(32,),
)
PROBE_HP = dqn.DQNHParams(lr=1e-2, gamma=0.9, eps_decay_fraction=0.3)


def sequences(reward, terminated, truncated):
    """A time-major ``replay.Experience`` of ``[n, B]`` flags (observations unused)."""
    shape = np.shape(reward)
    zeros = jnp.zeros((*shape, 1))
    return replay.Experience(
        zeros,
        jnp.zeros(shape, jnp.int32),
        jnp.asarray(reward, jnp.float32),
        jnp.asarray(terminated, bool),
        jnp.asarray(truncated, bool),
        zeros,
    )


def test_targets_max_and_double_on_hand_made_q_values():
    seq = sequences([[1.0, 1.0]], [[False, True]], [[False, False]])
    q_target = jnp.array([[[2.0, 5.0], [2.0, 5.0]]])  # [n=1, B=2, A=2]
    q_online = jnp.array([[[3.0, 1.0], [3.0, 1.0]]])  # online argmax is action 0
    # max: 1 + 0.5 * 5; terminated: 1 (no bootstrap).
    got = dqn.q_targets(None, q_target, seq, 0.5, 1, double=False)
    np.testing.assert_allclose(got, [3.5, 1.0])
    # double: the target network's value of the online argmax, 2.
    got = dqn.q_targets(q_online, q_target, seq, 0.5, 1, double=True)
    np.testing.assert_allclose(got, [2.0, 1.0])


def test_n_step_targets_stop_at_episode_ends():
    # Three sequences of 3 steps, gamma 0.5, rewards 1, bootstrap values 10, 20, 30.
    reward = np.ones((3, 3))
    terminated = np.zeros((3, 3), bool)
    truncated = np.zeros((3, 3), bool)
    terminated[1, 1] = True  # sequence 1 terminates at its second step
    truncated[0, 2] = True  # sequence 2 is cut by the time limit at its first step
    q_next = jnp.broadcast_to(jnp.array([10.0, 20.0, 30.0])[:, None, None], (3, 3, 1))
    got = dqn.q_targets(None, q_next, sequences(reward, terminated, truncated), 0.5, 3, False)
    want = [
        1 + 0.5 + 0.25 + 0.125 * 30,  # full 3-step return, bootstrapped at the last step
        1 + 0.5,  # terminated at step 1: no bootstrap
        1 + 0.5 * 10,  # truncated at step 0: bootstrap from its own next observation
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_epsilon_schedule():
    hp = dqn.DQNHParams(eps_start=1.0, eps_end=0.1, eps_decay_fraction=0.5)
    got = [float(linear_epsilon(hp, jnp.float32(s), 1000)) for s in (0, 250, 500, 900)]
    np.testing.assert_allclose(got, [1.0, 0.55, 0.1, 0.1], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"buffer_size": 64, "minibatch_size": 128}, "buffer_size=64 is smaller than minibatch"),
        ({"learning_starts": 500_000}, "learning_starts=500000 is not allowed"),
        ({"learning_starts": -1}, "learning_starts=-1 is not allowed"),
        ({"total_steps": 1000, "learning_starts": 995}, "leave at least one update"),
        ({"total_steps": 5}, "DQNConfig.total_steps=5 is less than one rollout"),
        ({"n_step": 0}, "n_step=0 is not allowed"),
        ({"loss": "l1"}, "loss='l1' is not allowed"),
        ({"weight_init": "xavier"}, "weight_init='xavier' is not allowed"),
        ({"priority_exponent": 1.5}, "priority_exponent=1.5 is not allowed"),
        ({"normalize_obs": True}, "normalize_obs=True is not supported"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dqn.DQNConfig(**kwargs)


@pytest.mark.parametrize("tau", [0.0, 1.5])
def test_tau_outside_unit_interval_raises(tau):
    with pytest.raises(ValueError, match=f"DQNHParams.tau={tau} is not allowed"):
        dqn.DQNHParams(tau=tau).validate()


def test_weight_init_option():
    env, params = envs.make("gymnax:CartPole-v1")

    def hidden_kernel(weight_init):  # the 64x64 layer of the default torso
        network = dqn.make_network(dqn.DQNConfig(weight_init=weight_init), env, params)
        weights = network.init(jax.random.key(0), jnp.zeros((1, 4)))
        (kernel,) = [w for w in jax.tree.leaves(weights) if w.shape == (64, 64)]
        return np.asarray(kernel)

    orthogonal = hidden_kernel("orthogonal")
    np.testing.assert_allclose(orthogonal.T @ orthogonal, 2.0 * np.eye(64), atol=1e-4)
    lecun = hidden_kernel("lecun_normal")  # the default: std 1/sqrt(fan_in), not orthogonal
    assert abs(lecun.std() - 1 / 8) < 0.01
    assert np.abs(lecun.T @ lecun - np.diag(np.diag(lecun.T @ lecun))).max() > 0.05


def test_layer_norm_option_normalises_every_hidden_layer():
    env, params = envs.make("gymnax:CartPole-v1")

    def layer_norm_scales(config):
        weights = dqn.make_network(config, env, params).init(jax.random.key(0), jnp.zeros((1, 4)))
        leaves = jax.tree.leaves_with_path(weights)
        return [w.shape for path, w in leaves if "LayerNorm" in jax.tree_util.keystr(path)
                and "scale" in jax.tree_util.keystr(path)]  # fmt: skip

    assert layer_norm_scales(dqn.DQNConfig(layer_norm=True)) == [(64,), (64,)]
    assert layer_norm_scales(dqn.DQNConfig()) == []


def test_continuous_env_raises():
    env, params = envs.make("gymnax:Pendulum-v1")
    with pytest.raises(ValueError, match="DQN needs a Discrete action space"):
        dqn.make_train(dqn.DQNConfig(), env, params)


@pytest.fixture(scope="module")
def probe_runs():
    """Probes 1-5 with uniform and with prioritised replay, 2 seeds each."""
    runs = {
        (index, prioritised): (index, replace(PROBE_CONFIG, prioritised=prioritised))
        for index in range(1, 6)
        for prioritised in (False, True)
    }
    return common.train_probes(dqn, runs, PROBE_HP)


@pytest.mark.parametrize("prioritised", [False, True], ids=["uniform", "prioritised"])
def test_probes(probe_runs, prioritised):
    runs = {index: probe_runs[index, prioritised] for index in range(1, 6)}
    common.check_probe1_value(runs[1], atol=1.0)  # bootstraps through truncation
    common.check_probe2_value(runs[2], atol=0.2)
    common.check_probe3_value(runs[3], atol=0.15)
    common.check_probe4_and_5_actions(runs[4], runs[5], min_prob=0.9)


def test_metrics_and_learning_start(probe_runs):
    metrics = probe_runs[4, False].metrics
    assert metrics["q_mean"].shape == (2, PROBE_CONFIG.num_updates)
    first_learning = PROBE_CONFIG.first_learning_update
    assert first_learning == 50  # 400 steps of 8 envs
    assert (metrics["td_abs"][:, :first_learning] == 0).all()
    assert (metrics["td_abs"][:, first_learning:] > 0).all()


def fake_rollout(num_steps, num_envs):
    """A rollout whose observation is (step, env), episodes ending every 4 steps."""
    t = jnp.broadcast_to(jnp.arange(num_steps, dtype=jnp.float32)[:, None], (num_steps, num_envs))
    env_id = jnp.broadcast_to(jnp.arange(num_envs, dtype=jnp.float32), (num_steps, num_envs))
    obs = jnp.stack([t, env_id], axis=-1)
    done = jnp.broadcast_to((jnp.arange(num_steps) % 4 == 3)[:, None], (num_steps, num_envs))
    zeros = jnp.zeros((num_steps, num_envs))
    return Transition(
        obs=obs, first=zeros.astype(bool), action=zeros.astype(jnp.int32), reward=t,
        terminated=done, truncated=zeros.astype(bool), next_obs=obs.at[..., 0].add(1.0),
        extras=None, episode_return=zeros, episode_done=done,
    )  # fmt: skip


ONE_STEP = jax.tree.map(lambda x: x[0, 0], replay.experience(fake_rollout(1, 1)))


def test_replay_samples_consecutive_steps_of_one_env():
    buffer = replay.Replay(num_envs=3, capacity=60, batch_size=32, sequence_length=3)
    state = buffer.init(ONE_STEP)
    state = jax.jit(buffer.add)(state, fake_rollout(12, 3))
    sample = jax.jit(buffer.sample)(state, jax.random.key(0)).experience
    assert sample.obs.shape == (32, 3, 2)
    steps, envs_ = np.asarray(sample.obs[..., 0]), np.asarray(sample.obs[..., 1])
    np.testing.assert_array_equal(np.diff(steps, axis=1), 1.0)  # consecutive in time
    assert (envs_ == envs_[:, :1]).all()  # one env per sequence
    np.testing.assert_array_equal(sample.next_obs[..., 0], steps + 1.0)


def test_prioritised_replay_favours_large_errors_and_corrects_for_it():
    buffer = replay.Replay(num_envs=1, capacity=8, batch_size=256, prioritised=True,
                           priority_exponent=1.0)  # fmt: skip
    state = buffer.init(ONE_STEP)
    state = buffer.add(state, fake_rollout(8, 1))
    sample = buffer.sample(state, jax.random.key(0))
    # Step 5 gets a TD error 9x the others': with alpha = 1 it is sampled 9/16 of the time.
    td = jnp.where(sample.indices == 5, 9.0, 1.0)
    state = buffer.update_priorities(state, sample, td)
    sample = buffer.sample(state, jax.random.key(1))
    share = float(np.mean(np.asarray(sample.experience.obs[:, 0, 0]) == 5.0))
    assert abs(share - 9 / 16) < 0.1, share
    # Importance weights (1/P)^beta, largest 1: the favoured item weighs (1/9)^beta.
    weights = np.asarray(buffer.importance_weights(sample, 0.5))
    favoured = np.asarray(sample.experience.obs[:, 0, 0]) == 5.0
    np.testing.assert_allclose(weights[~favoured], 1.0, rtol=1e-5)
    np.testing.assert_allclose(weights[favoured], (1 / 9) ** 0.5, rtol=1e-4)


def expected_profit(model, actions: np.ndarray, horizon: int) -> float:
    """Exact expected total profit of the stationary policy ``actions [S]`` over
    ``horizon`` periods from the reset state, by backward recursion on the model."""
    P, R = np.asarray(model.P, np.float64), np.asarray(model.R, np.float64)
    rows = np.arange(len(actions))
    value = np.zeros(len(actions))
    for _ in range(horizon):
        value = R[rows, actions] + P[rows, actions] @ value
    return float(value[int(model.initial_state)])


def optimal_profit(model, horizon: int) -> float:
    """The optimum: value iteration over the finite horizon (backward induction, no
    discount), the best any policy, stationary or not, can expect."""
    P, R = np.asarray(model.P, np.float64), np.asarray(model.R, np.float64)
    value = np.zeros(P.shape[0])
    for _ in range(horizon):
        value = (R + P @ value).max(axis=1)
    return float(value[int(model.initial_state)])


@pytest.mark.slow
def test_dqn_inventory_within_10_percent_of_optimum():
    # The dqn@Inventory preset (200k steps, lr 1e-3, gamma 0.9, a 20k buffer).
    env, params = envs.make("Inventory")
    model = inventory.tabular_model(params)
    preset = presets.get("dqn", "Inventory")
    config, hp = preset.apply(dqn.DQNConfig(), dqn.DQNHParams())
    assert config.total_steps == 200_000 and hp.gamma == 0.9
    train = jax.jit(jax.vmap(dqn.make_train(config, env, params), in_axes=(0, None)))
    state, _ = train(common.learning_keys(8), hp)
    # Each seed's greedy policy on every stock level, valued exactly on the model.
    obs = jnp.asarray(model.states, jnp.float32)
    q = jax.vmap(dqn.make_network(config, env, params).apply, in_axes=(0, None))(state.params, obs)
    profits = [expected_profit(model, np.asarray(a), 100) for a in q.argmax(-1)]
    optimum = optimal_profit(model, 100)
    assert optimum > 0
    ratios = np.asarray(profits) / optimum
    common.report("DQN Inventory profit / optimum, mean and lowest seed",
                  [ratios.mean(), ratios.min()], ">= 0.9 in mean")  # fmt: skip
    assert ratios.mean() >= 0.9, ratios


@pytest.mark.slow
def test_dqn_cartpole_500k():
    # The dqn@gymnax:CartPole-v1 preset: the defaults (PureJaxRL's settings) with
    # LayerNorm, a decayed learning rate and 3-step returns (docs/agents.md has why).
    # The median over seeds, not the mean: a solved seed can forget and fall back
    # late in training (a seed falls to 200-350 in the last 5%; 3 of the 32 seeds of
    # sets 0-3 on an AMD EPYC, none on the Xeon of the table), and whether a
    # set of 8 holds 0 or 3 such seeds decides a mean target (set 0: mean 419.3,
    # median 492.3 on the EPYC; 486.8 mean on the Xeon). The median asks that most
    # seeds end solved, which a broken agent does not. docs/learning-targets.md.
    preset = presets.get("dqn", "gymnax:CartPole-v1")
    config, hparams = preset.apply(dqn.DQNConfig(), dqn.DQNHParams())
    assert config.total_steps == 500_000 and config.layer_norm and config.n_step == 3
    common.check_cartpole_final_return(dqn, config, hparams, minimum=475, aggregate="median")
