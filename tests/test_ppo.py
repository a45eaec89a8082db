"""PPO: loss pieces on hand-made inputs, the train contract, and probes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl.agents import ppo

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
    """Train on every probe with 2 vmapped seeds; one compile per probe."""
    out = {}
    for index in range(1, 6):
        limit = 8 if index == 1 else 100
        env, params = envs.make(f"Probe-{index}", max_episode_steps=limit)
        train = ppo.make_train(PROBE_CONFIG, env, params)
        keys = jax.random.split(jax.random.key(index), 2)
        state, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, PROBE_HP)
        out[index] = (env, params, state, metrics)
    return out


def values_and_probs(run, obs):
    env, params, state, _ = run
    network = ppo.make_network(PROBE_CONFIG, env, params)
    dist, value = jax.vmap(network.apply, in_axes=(0, None))(state.params, obs)
    return np.asarray(value), np.asarray(dist.probs())


def test_probe1_value_bootstraps_through_truncation(probe_runs):
    # reward 1 forever, time limit 8: V = 1 / (1 - 0.9) = 10, not ~ (1 - 0.9^8) / 0.1 = 5.7
    value, _ = values_and_probs(probe_runs[1], jnp.zeros((1, 1)))
    np.testing.assert_allclose(value[:, 0], 10.0, atol=1.0)


def test_probe2_value_uses_observation(probe_runs):
    value, _ = values_and_probs(probe_runs[2], jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(value, [[-1.0, 1.0]] * 2, atol=0.2)


def test_probe3_value_discounts(probe_runs):
    value, _ = values_and_probs(probe_runs[3], jnp.array([[0.0], [1.0]]))
    np.testing.assert_allclose(value, [[0.9, 1.0]] * 2, atol=0.15)


def test_probe4_and_5_learn_the_best_action(probe_runs):
    _, probs = values_and_probs(probe_runs[4], jnp.zeros((1, 1)))
    assert (probs[:, 0, 1] > 0.9).all()
    _, probs = values_and_probs(probe_runs[5], jnp.array([[-1.0], [1.0]]))
    assert (probs[:, 0, 0] > 0.9).all() and (probs[:, 1, 1] > 0.9).all()


def test_metrics_have_update_axis(probe_runs):
    metrics = probe_runs[4][3]
    for value in metrics.values():
        assert value.shape == (2, PROBE_CONFIG.num_updates)


@pytest.fixture(scope="module")
def small_train():
    env, params = envs.make("gymnax:CartPole-v1")
    config = ppo.PPOConfig(num_envs=4, rollout_len=16, total_steps=4 * 16 * 3, num_minibatches=2)
    return ppo.make_train(config, env, params)


def test_vmap_over_seeds_equals_single_runs_and_compiles_once(small_train):
    keys = jax.random.split(jax.random.key(0), 2)
    hp = ppo.PPOHParams()
    batched = jax.jit(jax.vmap(small_train, in_axes=(0, None)))(keys, hp)
    single = jax.jit(chex.assert_max_traces(small_train, n=1))
    for i in range(2):
        state, metrics = single(keys[i], hp)
        expected = jax.tree.map(lambda x, i=i: x[i], (batched[0].params, batched[1]))
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)  # noqa: E731
        jax.tree.map(close, expected, (state.params, metrics))
    single(keys[0], hp._replace(lr=1e-3))  # new values, same shapes: no retrace


def test_different_seeds_give_different_initial_parameters(small_train):
    env, params = envs.make("gymnax:CartPole-v1")
    network = ppo.make_network(ppo.PPOConfig(), env, params)
    init = lambda k: network.init(k, jnp.zeros((1, 4)))  # noqa: E731
    a, b = init(jax.random.key(0)), init(jax.random.key(1))
    kernels = lambda p: [x for x in jax.tree.leaves(p) if x.ndim == 2]  # noqa: E731
    assert all(not np.allclose(x, y) for x, y in zip(kernels(a), kernels(b), strict=True))


def test_hyperparameter_sweep_is_one_vmap(small_train):
    hps = jax.tree.map(lambda x: jnp.full(2, x), ppo.PPOHParams())
    hps = hps._replace(lr=jnp.array([1e-4, 1e-3]), clip_eps=jnp.array([0.1, 0.3]))
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = jax.jit(jax.vmap(small_train))(keys, hps)
    assert metrics["policy_loss"].shape == (2, 3)


def test_continuous_actions_run():
    env, params = envs.make("gymnax:Pendulum-v1")
    config = ppo.PPOConfig(num_envs=2, rollout_len=8, total_steps=32, num_minibatches=2)
    state, metrics = jax.jit(ppo.make_train(config, env, params))(
        jax.random.key(0), ppo.PPOHParams()
    )
    assert np.isfinite(metrics["value_loss"]).all()
    act = ppo.make_policy(config, env, params, state)
    action = act(jax.random.key(1), jnp.zeros((3, 3)))
    assert action.shape == (3, 1)


def test_orthogonal_init_without_lapack():
    from jaxrl.networks import orthogonal

    for shape in [(64, 64), (4, 64), (64, 2), (3, 3, 4, 16)]:
        w = orthogonal(2.0)(jax.random.key(0), shape).reshape(-1, shape[-1])
        small = min(w.shape)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-4)
    # Batched (vmapped over seeds) init is the case LAPACK's QR deadlocks on.
    batch = jax.jit(jax.vmap(lambda k: orthogonal()(k, (64, 64))))(
        jax.random.split(jax.random.key(1), 8)
    )
    assert batch.shape == (8, 64, 64) and not np.allclose(batch[0], batch[1])


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
