"""PPO: loss pieces on hand-made inputs, bad configs, probes, and the recurrent policy.
The contract every agent keeps is tested in test_agent_contract.py."""

import dataclasses

import agents_common as common
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl.agents import ppo
from jaxrl.evaluate import evaluate

PROBE_CONFIG = ppo.PPOConfig(num_envs=8, rollout_len=16, total_steps=8 * 16 * 60, num_minibatches=4)
PROBE_HP = ppo.PPOHParams(lr=3e-3, gamma=0.9, ent_coef=0.0)


def test_clipped_surrogate_on_hand_made_inputs():
    adv = jnp.array([1.0, -1.0, 2.0, -2.0])
    # ratio 1: the loss is -mean(A).
    np.testing.assert_allclose(ppo.clipped_surrogate_loss(jnp.ones(4), adv, 0.2), -0.0)
    # Positive advantage: ratios above 1 + eps are clipped (1.5 -> 1.2); negative:
    # below 1 - eps clipped (0.5 -> 0.8); the pessimistic (min) term is taken.
    ratio = jnp.array([1.5, 0.5, 0.5, 1.5])
    want = -np.mean([1.2 * 1.0, 0.8 * -1.0, 0.5 * 2.0, 1.5 * -2.0])
    np.testing.assert_allclose(ppo.clipped_surrogate_loss(ratio, adv, 0.2), want, rtol=1e-6)
    # In the clipped region the gradient with respect to the ratio is zero.
    grad = jax.grad(ppo.clipped_surrogate_loss)(ratio, adv, 0.2)
    np.testing.assert_allclose(grad, [0.0, 0.0, -2.0 / 4, 2.0 / 4], atol=1e-7)


def test_value_loss_clipping():
    value, old, target = jnp.array([2.0]), jnp.array([0.0]), jnp.array([3.0])
    np.testing.assert_allclose(ppo.value_loss_fn(value, old, target, 0.2, False), 0.5)
    # clipped prediction 0.2 is further from the target: max(1, 2.8^2) / 2
    np.testing.assert_allclose(
        ppo.value_loss_fn(value, old, target, 0.2, True), 0.5 * 2.8**2, rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_minibatches": 3}, "num_minibatches=3 does not divide num_envs \\* rollout_len=512"),
        ({"num_envs": 0}, "num_envs=0 is not allowed"),
        ({"total_steps": 100}, "total_steps=100 is less than one rollout"),
        ({"activation": "sigmoid"}, "activation='sigmoid' is not allowed"),
        ({"gru_size": 8, "num_minibatches": 3}, "does not divide num_envs=4"),
        ({"gae_segment": -1}, "gae_segment=-1 is not allowed; it must be >= 0"),
        ({"value_hidden_sizes": ()}, r"value_hidden_sizes=\(\) is not allowed; it must be None"),
        ({"value_hidden_sizes": (8, 0)}, r"value_hidden_sizes=\(8, 0\) is not allowed"),
        ({"hidden_sizes": (0,)}, r"hidden_sizes=\(0,\) is not allowed; every layer size must"),
        ({"hidden_sizes": (64, 2.5)}, r"hidden_sizes=\(64, 2.5\) is not allowed"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ppo.PPOConfig(**kwargs)


def test_bad_hparams_and_action_space_raise():
    with pytest.raises(ValueError, match=r"PPOHParams.gamma=1.5 is not allowed"):
        ppo.PPOHParams(gamma=1.5).validate()
    env, params = envs.make("gymnax:Breakout-MinAtar")
    ppo.make_train(PROBE_CONFIG, env, params)  # discrete: fine


@pytest.fixture(scope="module")
def probe_runs():
    return common.train_probes(ppo, {i: (i, PROBE_CONFIG) for i in range(1, 6)}, PROBE_HP)


def test_probe1_value_bootstraps_through_truncation(probe_runs):
    common.check_probe1_value(probe_runs[1], atol=1.0)


def test_probe2_value_uses_observation(probe_runs):
    common.check_probe2_value(probe_runs[2], atol=0.2)


def test_probe3_value_discounts(probe_runs):
    common.check_probe3_value(probe_runs[3], atol=0.15)


def test_probe4_and_5_learn_the_best_action(probe_runs):
    common.check_probe4_and_5_actions(probe_runs[4], probe_runs[5], min_prob=0.9)


def test_gae_segment_reaches_the_update():
    # One update on Probe-3 (reward at the second step): segments as long as the
    # rollout change nothing, one-step segments (TD(0) advantages) change the update.
    env, params = envs.make("Probe-3")

    def params_after_one_update(gae_segment):
        config = dataclasses.replace(PROBE_CONFIG, total_steps=8 * 16, gae_segment=gae_segment)
        state, _ = jax.jit(ppo.make_train(config, env, params))(jax.random.key(0), PROBE_HP)
        return jax.tree.leaves(state.params)

    whole, rollout_long, one_step = map(params_after_one_update, (0, 16, 1))
    for a, b in zip(whole, rollout_long, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(whole, one_step, strict=True))


def test_value_hidden_sizes_size_the_critic_alone():
    env, params = envs.make("Probe-3")
    config = dataclasses.replace(PROBE_CONFIG, hidden_sizes=(8,), value_hidden_sizes=(16, 12))
    state, _ = jax.jit(ppo.make_train(config, env, params))(jax.random.key(0), PROBE_HP)
    shapes = jax.tree.map(np.shape, state.params["params"])
    critic = [shapes["critic_torso"][k]["kernel"] for k in sorted(shapes["critic_torso"])]
    actor = [shapes["actor_torso"][k]["kernel"] for k in sorted(shapes["actor_torso"])]
    obs_dim = env.observation_space(params).shape[0]
    assert critic == [(obs_dim, 16), (16, 12)] and actor == [(obs_dim, 8)]
    assert shapes["value_head"]["Dense_0"]["kernel"] == (12, 1)


def test_orthogonal_init_matches_jax_and_is_safe_under_vmap():
    from jaxrl.networks import orthogonal

    for shape in [(64, 64), (4, 64), (64, 2), (3, 3, 4, 16)]:
        key = jax.random.key(0)
        w = orthogonal(2.0)(key, shape)
        # jax's initialiser draws the same Gaussian matrix and sign-corrects its QR.
        np.testing.assert_allclose(w, jax.nn.initializers.orthogonal(2.0)(key, shape), atol=1e-6)
        w = w.reshape(-1, shape[-1])
        small = min(w.shape)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-4)
    # Batched (vmapped over seeds, twice) init is the case a batched QR deadlocks on.
    keys = jax.random.split(jax.random.key(1), (2, 4))
    batch = jax.jit(jax.vmap(jax.vmap(lambda k: orthogonal()(k, (64, 8)))))(keys)
    assert batch.shape == (2, 4, 64, 8) and not np.allclose(batch[0, 0], batch[0, 1])
    np.testing.assert_allclose(batch[1, 2], orthogonal()(keys[1, 2], (64, 8)), atol=1e-6)


def test_gru_resets_hidden_state_at_episode_starts():
    from jaxrl.networks import ResettingGRU

    gru = ResettingGRU(8)
    x = jax.random.normal(jax.random.key(0), (3, 2, 4))
    carry = jnp.ones((2, 8))
    params = gru.init(jax.random.key(1), carry, x, jnp.zeros((3, 2), bool))
    reset = jnp.array([[False, False], [True, False], [False, False]])
    _, y = gru.apply(params, carry, x, reset)
    # From step 1 on, env 0 must match a fresh start from a zero carry.
    _, fresh = gru.apply(params, jnp.zeros((2, 8)), x[1:], jnp.zeros((2, 2), bool))
    np.testing.assert_allclose(y[1:, 0], fresh[:, 0], atol=1e-6)
    assert not np.allclose(y[1:, 1], fresh[:, 1])


def test_recurrent_ppo_trains_under_vmap():
    env, params = envs.make("gymnax:MemoryChain-bsuite")
    config = ppo.PPOConfig(num_envs=4, rollout_len=8, total_steps=64, num_minibatches=2, gru_size=8)
    train = jax.vmap(ppo.make_train(config, env, params), in_axes=(0, None))
    state, metrics = jax.jit(train)(jax.random.split(jax.random.key(0), 8), ppo.PPOHParams())
    assert state.rnn.shape == (8, 4, 8) and np.isfinite(metrics["value_loss"]).all()

    # The trained recurrent policy evaluates with its GRU state threaded through.
    eval_env, _ = envs.make("gymnax:MemoryChain-bsuite", autoreset=False)
    seed0 = jax.tree.map(lambda x: x[0], state)
    act = ppo.make_policy(config, env, params, seed0)
    carry = jnp.zeros((6, config.gru_size))
    returns = jax.jit(evaluate, static_argnums=(0, 2, 4, 5))(
        eval_env, params, act, jax.random.key(2), 6, 200, carry
    )
    # MemoryChain pays +1 or -1 once, at the end of the episode.
    assert returns.shape == (6,) and set(np.asarray(returns).tolist()) <= {-1.0, 1.0}


def test_squashed_policy_learns_in_bounds_and_acts_in_the_env_range():
    # ContinuousProbe-5 (bounds [-1, 1]): the best action is 0.5 times the obs sign.
    config = dataclasses.replace(PROBE_CONFIG, squash=True)
    run = common.train_probes(ppo, {5: (5, config, True)}, PROBE_HP)[5]
    for seed in range(2):
        state = jax.tree.map(lambda x, s=seed: x[s], run.state)
        act = ppo.make_policy(config, run.env, run.env_params, state)
        action = np.asarray(act(jax.random.key(0), jnp.array([[-1.0], [1.0]])))[:, 0]
        np.testing.assert_allclose(action, [-0.5, 0.5], atol=0.1)
    # Its entropy bonus is -mean(log_prob) of the rollout's actions (no closed form).
    dist = ppo.TanhGaussian(jnp.zeros((3, 1)), jnp.zeros((3, 1)))
    log_prob = jnp.array([-1.0, -2.0, -3.0])
    np.testing.assert_allclose(ppo.policy_entropy(dist, log_prob), 2.0)

    # On Pendulum (bounds [-2, 2]) the policy acts in [-1, 1] and make_policy rescales.
    env, params = envs.make("gymnax:Pendulum-v1")
    small = ppo.PPOConfig(num_envs=2, rollout_len=8, total_steps=16, num_minibatches=2, squash=True)
    state = ppo.make_train(small, env, params).start(jax.random.key(0), ppo.PPOHParams())
    obs = jax.random.normal(jax.random.key(1), (5, 3))
    dist, _ = ppo.make_network(small, env, params).apply(state.params, obs)
    greedy = ppo.make_policy(small, env, params, state)(jax.random.key(2), obs)
    np.testing.assert_allclose(greedy, 2.0 * np.tanh(dist.mean), rtol=1e-5, atol=1e-6)
    sampled = ppo.make_policy(small, env, params, state, deterministic=False)(
        jax.random.key(2), obs * 100.0
    )
    assert (np.abs(np.asarray(sampled)) <= 2.0).all()

    # Squashing needs finite bounds to rescale to; the clipped Gaussian does not.
    probe, probe_params = envs.make("ContinuousProbe-4")
    with pytest.raises(ValueError, match="PPO needs finite action bounds"):
        ppo.make_train(config, common.UnboundedActions(probe), probe_params)
    ppo.make_train(PROBE_CONFIG, common.UnboundedActions(probe), probe_params)
    # ... and means nothing for discrete actions.
    cartpole, cartpole_params = envs.make("gymnax:CartPole-v1")
    with pytest.raises(ValueError, match="PPOConfig.squash=True is not allowed for discrete"):
        ppo.make_train(config, cartpole, cartpole_params)


def test_state_std_depends_on_the_state_and_stays_above_its_floor():
    from jaxrl.networks import GaussianHead

    env, params = envs.make("gymnax:Pendulum-v1")
    small = ppo.PPOConfig(
        num_envs=2, rollout_len=8, total_steps=16, num_minibatches=2, squash=True, state_std=True
    )
    state = ppo.make_train(small, env, params).start(jax.random.key(0), ppo.PPOHParams())
    assert "log_std" not in state.params["params"]["policy_head"]  # no free parameter
    obs = jax.random.normal(jax.random.key(1), (5, 3))
    dist, _ = ppo.make_network(small, env, params).apply(state.params, obs)
    std = np.exp(np.asarray(dist.log_std))
    # brax.training's softplus(0) + 0.001 at init (the head's small init), varying by state.
    np.testing.assert_allclose(std, np.log(2.0) + 1e-3, rtol=0.05)
    assert np.ptp(std) > 0
    head = GaussianHead(1, squash=True, state_std=True)
    head_params = head.init(jax.random.key(0), jnp.ones((1, 4)))
    huge = jax.tree.map(lambda w: -1e3 * jnp.ones_like(w), head_params)  # softplus -> 0
    floor = np.exp(np.asarray(head.apply(huge, jnp.ones((1, 4))).log_std))
    np.testing.assert_allclose(floor, GaussianHead.MIN_STD, rtol=1e-4)
    cartpole, cartpole_params = envs.make("gymnax:CartPole-v1")
    with pytest.raises(ValueError, match="PPOConfig.state_std=True is not allowed for discrete"):
        ppo.make_train(dataclasses.replace(PROBE_CONFIG, state_std=True), cartpole, cartpole_params)
