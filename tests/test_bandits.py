"""Bandits: params validation, regret properties, reward statistics, spaces and clipping.

Each jitted function is compiled once per module (module-scoped fixtures with
fixed shapes); hypothesis varies only the traced inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.bandits import (
    BernoulliBandit,
    ContextualBandit,
    GaussianBandit,
    expected_rewards,
)

T = 24  # steps per property-test rollout
FEW = settings(max_examples=6, deadline=None)

ENVS = {
    "bernoulli": (BernoulliBandit(), {}),
    "gaussian": (GaussianBandit(), {}),
    "linear": (ContextualBandit(), {}),
    "logistic": (ContextualBandit(), {"link": "logistic"}),
}


def _oracle(env, state, params):
    """The optimal arm for the decision about to be made, from the ground truth in ``state``."""
    if isinstance(env, ContextualBandit):
        return jnp.argmax(expected_rewards(state.theta, state.context, params))
    return jnp.argmax(state.means)


def _make_rollout(env, params):
    """``(key, actions (T,), use_oracle (T,)) -> (reset timestep, step timesteps, obs_ok)``."""

    def rollout(key, actions, use_oracle):
        reset_key, key = jax.random.split(key)
        state, first = env.reset(reset_key, params)
        space = env.observation_space(params)

        def body(state, inputs):
            step_key, action, oracle = inputs
            action = jnp.where(oracle, _oracle(env, state, params), action)
            state, ts = env.step(step_key, state, action, params)
            return state, (ts, space.contains(ts.obs))

        inputs = (jax.random.split(key, T), actions, use_oracle)
        _, (ts, obs_ok) = jax.lax.scan(body, state, inputs)
        return first, ts, obs_ok & space.contains(first.obs)

    return jax.jit(rollout)


@pytest.fixture(scope="module")
def rollouts():
    compiled = {}
    for name, (env, overrides) in ENVS.items():
        params = env.default_params(**overrides)
        compiled[name] = (env, params, _make_rollout(env, params))
    return compiled


# Params validation ---------------------------------------------------------


@pytest.mark.parametrize(
    "env, overrides, match",
    [
        (BernoulliBandit(), {"num_arms": 1}, r"BernoulliBanditParams\.num_arms=1 .*>= 2"),
        (BernoulliBandit(), {"num_arms": 3, "means": np.array([0.1, 1.5, 0.2])}, r"means=\[1\.5\]"),
        (BernoulliBandit(), {"means": np.array([0.1, 0.2])}, r"means has shape \(2,\)"),
        (
            GaussianBandit(),
            {"noise_std": -0.5},
            r"GaussianBanditParams\.noise_std=-0\.5 .*\[0, inf\)",
        ),
        (GaussianBandit(), {"prior_std": -1.0}, r"prior_std=-1"),
        (GaussianBandit(), {"num_arms": 2, "means": np.array([0.0, np.nan])}, r"means=\[nan\]"),
        (ContextualBandit(), {"num_arms": 0}, r"ContextualBanditParams\.num_arms=0"),
        (ContextualBandit(), {"context_dim": 0}, r"context_dim=0 .*>= 1"),
        (ContextualBandit(), {"link": "probit"}, r"link='probit' .*linear, logistic"),
        (ContextualBandit(), {"noise_std": -1.0}, r"noise_std=-1"),
        (ContextualBandit(), {"theta_scale": -2.0}, r"theta_scale=-2"),
        (ContextualBandit(), {"theta": np.zeros((5, 4))}, r"theta has shape \(5, 4\).*\(5, 5\)"),
        (BernoulliBandit(), {"arms": 3}, r"no field.*arms"),
    ],
)
def test_bad_params_raise_naming_the_field(env, overrides, match):
    with pytest.raises(ValueError, match=match):
        env.default_params(**overrides)


def test_registered_bandits_build_with_defaults():
    for name, arms in [("Bandit-Bernoulli", 10), ("Bandit-Gaussian", 10)]:
        env, params = envs.make(name)
        assert env.action_space(params).n == arms and params.num_arms == arms
        assert env.find(envs.wrappers.TimeLimit).max_episode_steps == 1000
    env, params = envs.make("ContextualBandit-Linear", raw=True, link="logistic")
    assert (params.num_arms, params.context_dim, params.link) == (5, 5, "logistic")
    assert env.observation_space(params).shape == (5,)


# Regret and spaces (hypothesis over keys and action sequences) ---------------


@pytest.mark.parametrize("name", list(ENVS))
@FEW
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(-3, 14), min_size=T, max_size=T),
    oracle=st.lists(st.booleans(), min_size=T, max_size=T),
)
def test_regret_nonnegative_and_zero_for_optimal_arm(rollouts, name, seed, actions, oracle):
    env, params, rollout = rollouts[name]
    first, ts, obs_ok = rollout(jax.random.key(seed), jnp.asarray(actions), jnp.asarray(oracle))
    regret = np.asarray(ts.info["regret"])
    assert np.all(regret >= 0.0)
    np.testing.assert_array_equal(regret[np.asarray(oracle)], 0.0)
    assert bool(np.all(obs_ok)), "an observation left the observation space"
    assert not bool(ts.terminated.any()) and not bool(ts.truncated.any())
    # mean_reward + regret = the best arm's expected reward, on every step.
    best = ts.info["mean_reward"] + ts.info["regret"]
    if name in ("bernoulli", "gaussian"):
        np.testing.assert_allclose(best, np.full(T, best[0]), rtol=1e-6, atol=1e-6)
        assert np.all(np.asarray(ts.info["optimal_action"]) == int(first.info["optimal_action"]))
    if name in ("bernoulli", "logistic"):
        assert set(np.unique(ts.reward)) <= {0.0, 1.0}


@pytest.mark.parametrize("name", list(ENVS))
def test_info_structure_identical_after_reset_and_step(rollouts, name):
    env, params, rollout = rollouts[name]
    first, ts, _ = rollout(jax.random.key(0), jnp.zeros(T, jnp.int32), jnp.zeros(T, bool))
    structure = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)
    step0 = jax.tree.map(lambda x: x[0], ts)
    assert structure(first) == structure(step0)
    assert set(first.info) == {"regret", "optimal_action", "mean_reward"}
    assert float(first.info["regret"]) == 0.0 and float(first.reward) == 0.0
    assert first.obs.dtype == jnp.float32


def test_out_of_range_actions_are_clipped(rollouts):
    _, _, rollout = rollouts["bernoulli"]
    key, no_oracle = jax.random.key(3), jnp.zeros(T, bool)
    _, low, _ = rollout(key, jnp.full(T, -3, jnp.int32), no_oracle)
    _, zero, _ = rollout(key, jnp.zeros(T, jnp.int32), no_oracle)
    _, high, _ = rollout(key, jnp.full(T, 14, jnp.int32), no_oracle)
    _, last, _ = rollout(key, jnp.full(T, 9, jnp.int32), no_oracle)
    np.testing.assert_array_equal(low.reward, zero.reward)
    np.testing.assert_array_equal(high.info["mean_reward"], last.info["mean_reward"])


# Reward statistics ------------------------------------------------------------

PULLS = 4000


@pytest.fixture(scope="module")
def pull_all_arms():
    """``(env, params) -> jitted key -> (means (K,), rewards (K, PULLS))`` from one reset."""

    def make(env, params):
        def pull(key):
            reset_key, key = jax.random.split(key)
            state, _ = env.reset(reset_key, params)
            arms = jnp.arange(params.num_arms)
            keys = jax.random.split(key, (params.num_arms, PULLS))
            step = lambda k, a: env.step(k, state, a, params)[1].reward
            rewards = jax.vmap(jax.vmap(step, (0, None)), (0, 0))(keys, arms)
            return state.means, rewards

        return jax.jit(pull)

    bernoulli, gaussian = BernoulliBandit(), GaussianBandit()
    return {
        "bernoulli": make(bernoulli, bernoulli.default_params()),
        "gaussian": make(gaussian, gaussian.default_params()),
    }


@pytest.mark.parametrize("name, reward_std", [("bernoulli", 0.5), ("gaussian", 1.0)])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_empirical_arm_means_match_state_means(pull_all_arms, name, reward_std, seed):
    means, rewards = pull_all_arms[name](jax.random.key(seed))
    # 5 standard errors: a false failure has probability ~1e-5 per arm.
    tolerance = 5 * reward_std / np.sqrt(PULLS)
    np.testing.assert_allclose(rewards.mean(axis=1), means, atol=tolerance)
    if name == "bernoulli":
        assert np.all((means >= 0) & (means <= 1))


def test_means_differ_between_episodes_and_fixed_means_are_used():
    env = GaussianBandit()
    params = env.default_params()
    a, _ = env.reset(jax.random.key(0), params)
    b, _ = env.reset(jax.random.key(1), params)
    assert not np.allclose(a.means, b.means)

    bernoulli = BernoulliBandit()
    fixed = bernoulli.default_params(num_arms=3, means=jnp.array([0.0, 0.25, 1.0]))
    state, ts = bernoulli.reset(jax.random.key(0), fixed)
    np.testing.assert_array_equal(state.means, [0.0, 0.25, 1.0])
    assert int(ts.info["optimal_action"]) == 2
    rewards = [
        float(bernoulli.step(jax.random.key(i), state, a, fixed)[1].reward)
        for i, a in enumerate([0, 2])
    ]
    assert rewards == [0.0, 1.0]


def test_vmap_over_traced_params():
    env = GaussianBandit()
    params = env.default_params(num_arms=2, means=jnp.array([0.0, 1.0]))
    # Batched params (a leading axis on every traced field) pass validation and vmap.
    batch = params.replace(
        noise_std=jnp.array([0.0, 2.0]),
        prior_std=jnp.ones(2),
        means=jnp.array([[0.0, 1.0], [0.0, 1.0]]),
    )
    state, _ = env.reset(jax.random.key(0), params)
    step = lambda p: env.step(jax.random.key(1), state, 1, p)[1].reward
    rewards = jax.vmap(step)(batch)
    # An all-zeros in_axes spec (int placeholders) passes validation too.
    in_axes = jax.tree.map(lambda _: 0, batch)
    np.testing.assert_array_equal(jax.vmap(step, in_axes=(in_axes,))(batch), rewards)
    assert float(rewards[0]) == 1.0 and float(rewards[1]) != 1.0


@pytest.fixture(scope="module")
def contextual_pulls():
    """``(params) -> jitted key -> (state, rewards (K, PULLS), next contexts (PULLS, d))``."""
    env = ContextualBandit()

    def make(params):
        def pull(key):
            reset_key, key = jax.random.split(key)
            state, _ = env.reset(reset_key, params)
            keys = jax.random.split(key, (params.num_arms, PULLS))

            def step(k, a):
                _, ts = env.step(k, state, a, params)
                return ts.reward, ts.obs

            rewards, contexts = jax.vmap(jax.vmap(step, (0, None)))(
                keys, jnp.arange(params.num_arms)
            )
            return state, rewards, contexts[0]

        return jax.jit(pull)

    return {link: make(env.default_params(link=link)) for link in ("linear", "logistic")}


@pytest.mark.parametrize("link", ["linear", "logistic"])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_contextual_rewards_match_the_link_expectation(contextual_pulls, link, seed):
    params = ContextualBandit().default_params(link=link)
    state, rewards, next_contexts = contextual_pulls[link](jax.random.key(seed))
    # The reward is judged in the context shown before the step: E[r|x,a] per the link.
    logits = np.asarray(state.theta) @ np.asarray(state.context)
    expected = 1 / (1 + np.exp(-logits)) if link == "logistic" else logits
    reward_std = 0.5 if link == "logistic" else params.noise_std
    np.testing.assert_allclose(rewards.mean(axis=1), expected, atol=5 * reward_std / np.sqrt(PULLS))
    # Next contexts are fresh N(0, I) draws.
    np.testing.assert_allclose(next_contexts.mean(axis=0), 0.0, atol=5 / np.sqrt(PULLS))
    np.testing.assert_allclose(next_contexts.std(axis=0), 1.0, atol=0.1)


def test_contextual_theta_scale_gives_order_one_rewards():
    env = ContextualBandit()
    params = env.default_params()
    keys = jax.random.split(jax.random.key(0), 512)
    states, _ = jax.vmap(env.reset, (0, None))(keys, params)
    logits = jnp.einsum("nkd,nd->nk", states.theta, states.context)
    assert 0.7 < float(jnp.std(logits)) < 1.3  # ~ theta_scale = 1
    fixed = env.default_params(num_arms=2, context_dim=1, theta=jnp.array([[1.0], [-1.0]]))
    state, ts = env.reset(jax.random.key(0), fixed)
    np.testing.assert_array_equal(state.theta, [[1.0], [-1.0]])
    assert int(ts.info["optimal_action"]) == int(ts.obs[0] < 0)
