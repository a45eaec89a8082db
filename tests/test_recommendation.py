"""Recommendation: validation, invariants, the click model, and clicks-now vs keeping users.

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
from envs.recommendation import (
    Recommendation,
    RecommendationParams,
    click_probabilities,
    default_catalogue,
    keeper_policy,
    myopic_policy,
    plot_user,
)
from envs.wrappers import TimeLimit

T = 40  # steps per property-test rollout
USERS = 256
HORIZON = 200


@pytest.fixture(scope="module")
def env_and_params():
    env = Recommendation()
    return env, env.default_params()


# Params ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"num_items": 1}, r"num_items=1"),
        ({"interest_dim": 0}, r"interest_dim=0"),
        ({"click_base": 1.5}, r"RecommendationParams\.click_base=1\.5 .*\[0, 1\]"),
        ({"click_appeal": -0.1}, r"click_appeal=-0\.1"),
        ({"leave_threshold": 1.2}, r"leave_threshold=1\.2 .*\[0, 1\]"),
        ({"initial_satisfaction": -0.5}, r"initial_satisfaction=-0\.5"),
        ({"satisfaction_noise": -0.01}, r"satisfaction_noise=-0\.01 .*\[0, inf\)"),
        ({"initial_satisfaction_std": -1.0}, r"initial_satisfaction_std=-1"),
        ({"satisfaction_rate": 2.0}, r"satisfaction_rate=2"),
        ({"item_quality": jnp.full(10, 1.5)}, r"item_quality=\[1\.5"),
        ({"item_clickbait": jnp.full(10, -1.0)}, r"item_clickbait=\[-1\."),
        ({"item_features": jnp.zeros((10, 3))}, r"item_features has shape \(10, 3\).*\(10, 4\)"),
        ({"clicks": 1}, r"no field.*clicks"),
    ],
)
def test_bad_params_raise_naming_the_field(env_and_params, overrides, match):
    env, _ = env_and_params
    with pytest.raises(ValueError, match=match):
        env.default_params(**overrides)


def test_default_catalogue_is_deterministic_and_resizes():
    features, quality, clickbait = default_catalogue()
    again = default_catalogue()
    for a, b in zip((features, quality, clickbait), again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-6)
    assert int(clickbait.sum()) == 3 and float(quality[clickbait > 0.5].max()) < 0.5
    params = Recommendation().default_params(num_items=6, interest_dim=3, leave_threshold=0.1)
    assert params.item_features.shape == (6, 3) and params.item_quality.shape == (6,)
    assert Recommendation().observation_space(params).shape == (5,)
    with pytest.raises(ValueError, match="item_features has shape"):
        RecommendationParams(num_items=6)  # direct construction keeps the 10-item catalogue


def test_registered_with_a_200_step_limit():
    env, params = envs.make("Recommendation")
    assert env.find(TimeLimit).max_episode_steps == 200
    assert env.action_space(params).n == 10


# Invariants (hypothesis over keys and action sequences) -----------------------


@pytest.fixture(scope="module")
def rollout(env_and_params):
    env, params = env_and_params
    space = env.observation_space(params)

    def run(key, actions):
        reset_key, key = jax.random.split(key)
        state, first = env.reset(reset_key, params)

        def body(state, inputs):
            step_key, action = inputs
            state, ts = env.step(step_key, state, action, params)
            return state, (ts, space.contains(ts.obs))

        _, (ts, obs_ok) = jax.lax.scan(body, state, (jax.random.split(key, T), actions))
        return first, ts, obs_ok & space.contains(first.obs)

    return jax.jit(run)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(-2, 12), min_size=T, max_size=T),
)
def test_satisfaction_bounded_and_termination_exactly_below_threshold(
    env_and_params, rollout, seed, actions
):
    _, params = env_and_params
    first, ts, obs_ok = rollout(jax.random.key(seed), jnp.asarray(actions, jnp.int32))
    satisfaction = np.asarray(ts.info["satisfaction"])
    assert np.all((satisfaction >= 0.0) & (satisfaction <= 1.0))
    assert 0.0 <= float(first.info["satisfaction"]) <= 1.0
    np.testing.assert_array_equal(ts.terminated, satisfaction < params.leave_threshold)
    assert not bool(ts.truncated.any())
    assert bool(np.all(obs_ok)), "an observation left the observation space"
    # The observation carries the satisfaction and the last click; reward is the click.
    # The same value, which XLA may compute in two fusions: equal up to rounding (at
    # -O0, as the default test tier compiles, they can differ in the last bit).
    np.testing.assert_allclose(ts.obs[:, params.interest_dim], satisfaction, rtol=2e-7, atol=0)
    np.testing.assert_array_equal(ts.obs[:, params.interest_dim + 1], ts.reward)
    np.testing.assert_array_equal(ts.reward, ts.info["click"])
    assert set(np.unique(ts.reward)) <= {0.0, 1.0}
    p = np.asarray(ts.info["click_probability"])
    assert np.all((p >= 0.0) & (p <= 1.0))
    # Clipped actions: the flag is the shown item's.
    shown = np.clip(actions, 0, params.num_items - 1)
    np.testing.assert_array_equal(
        ts.info["clickbait"], np.asarray(params.item_clickbait)[shown] > 0.5
    )
    # Interests are a unit vector, fixed for the episode.
    interests = np.asarray(ts.obs[:, : params.interest_dim])
    np.testing.assert_allclose(np.linalg.norm(interests, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        interests, np.broadcast_to(first.obs[: params.interest_dim], interests.shape)
    )


def test_info_structure_identical_after_reset_and_step(rollout):
    first, ts, _ = rollout(jax.random.key(0), jnp.zeros(T, jnp.int32))
    structure = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)
    assert structure(first) == structure(jax.tree.map(lambda x: x[0], ts))
    assert set(first.info) == {"click", "satisfaction", "clickbait", "click_probability"}
    assert first.obs.dtype == jnp.float32


# The click and satisfaction model -------------------------------------------


@pytest.fixture(scope="module")
def one_step_many_keys(env_and_params):
    """``(params, state, action) -> ts`` of one step from ``state`` under 4000 keys (jitted)."""
    env, _ = env_and_params
    keys = jax.random.split(jax.random.key(7), 4000)
    step = lambda p, s, a: jax.vmap(lambda k: env.step(k, s, a, p)[1])(keys)
    return jax.jit(step)


def test_empirical_click_rate_matches_click_probability(env_and_params, one_step_many_keys):
    env, params = env_and_params
    state, _ = env.reset(jax.random.key(1), params)
    p_all = click_probabilities(state.interests, state.satisfaction, params)
    for action in (0, params.num_items - 1):
        ts = one_step_many_keys(params, state, action)
        assert float(ts.info["click_probability"][0]) == float(p_all[action])
        np.testing.assert_allclose(ts.reward.mean(), p_all[action], atol=5 * 0.5 / np.sqrt(4000))


def test_identities_of_the_click_and_satisfaction_model(env_and_params, one_step_many_keys):
    env, _ = env_and_params
    # No click weights: every item is clicked with click_base.
    flat = env.default_params(click_match=0.0, click_satisfaction=0.0, click_appeal=0.0)
    state, _ = env.reset(jax.random.key(2), flat)
    np.testing.assert_allclose(click_probabilities(state.interests, 0.9, flat), flat.click_base)
    # No noise and no match term: satisfaction moves by rate * (quality - neutral) exactly.
    exact = env.default_params(satisfaction_noise=0.0, satisfaction_match=0.0)
    state, _ = env.reset(jax.random.key(3), exact)
    state = state.replace(satisfaction=jnp.float32(0.5))
    for action in (0, 7):
        ts = one_step_many_keys(exact, state, action)
        drift = exact.satisfaction_rate * (exact.item_quality[action] - exact.satisfaction_neutral)
        np.testing.assert_allclose(ts.info["satisfaction"], 0.5 + drift, rtol=1e-6)
    # Clickbait lowers satisfaction, the best good match raises it.
    state, ts = env.reset(jax.random.key(4), exact)
    bait = myopic_policy(ts.obs, exact)
    keep = keeper_policy(ts.obs, exact)
    assert bool(exact.item_clickbait[bait] > 0.5) and bool(exact.item_clickbait[keep] < 0.5)


def test_vmap_over_traced_params(env_and_params):
    env, params = env_and_params
    batch = params.replace(leave_threshold=jnp.array([0.0, 1.0]))
    # An in_axes spec (None leaves) passes validation too: map only the threshold.
    in_axes = jax.tree.map(lambda _: None, params).replace(leave_threshold=0)
    jax.tree.map(lambda _: 0, params)  # an all-zeros spec (int placeholders) is accepted too
    state, _ = env.reset(jax.random.key(0), params)
    step = lambda p: env.step(jax.random.key(1), state, 0, p)[1].terminated
    terminated = jax.vmap(step, in_axes=(in_axes,))(batch)
    np.testing.assert_array_equal(terminated, [False, True])


# Clicks now vs keeping the user -----------------------------------------------


@pytest.fixture(scope="module")
def evaluate(env_and_params):
    """Jitted ``(key, use_keeper) -> per-user return, length and per-step infos`` for USERS users.

    One compile serves both policies (the choice is a traced flag); steps after
    a user's episode ended (terminated or truncated) are masked out.
    """
    env, params = env_and_params
    env = TimeLimit(env, HORIZON)

    def one_user(key, use_keeper):
        reset_key, key = jax.random.split(key)
        state, ts = env.reset(reset_key, params)

        def body(carry, step_key):
            state, obs, alive = carry
            action = jnp.where(use_keeper, keeper_policy(obs, params), myopic_policy(obs, params))
            state, ts = env.step(step_key, state, action, params)
            out = (ts.reward * alive, alive, ts.info)
            return (state, ts.obs, alive & ~ts.done), out

        init = (state, ts.obs, jnp.bool_(True))
        _, (rewards, alive, infos) = jax.lax.scan(body, init, jax.random.split(key, HORIZON))
        return rewards.sum(), alive.sum(), infos

    keys_for = lambda key: jax.random.split(key, USERS)
    return jax.jit(lambda key, keeper: jax.vmap(one_user, (0, None))(keys_for(key), keeper))


def test_myopic_click_maximiser_earns_less_than_keeping_users(evaluate):
    key = jax.random.key(2019)
    myopic_return, myopic_length, myopic_infos = evaluate(key, False)
    keeper_return, keeper_length, _ = evaluate(key, True)
    myopic, keeper = float(myopic_return.mean()), float(keeper_return.mean())
    print(f"clicks per user over {USERS} users: myopic {myopic:.1f}, keeper {keeper:.1f}")
    assert keeper >= 1.5 * myopic, (myopic, keeper)
    # Why: the myopic policy shows clickbait and users leave early; the keeper keeps them.
    assert float(myopic_length.mean()) < 0.25 * HORIZON
    assert float(keeper_length.mean()) > 0.9 * HORIZON
    shown = np.asarray(myopic_infos["clickbait"])[
        np.arange(HORIZON) < np.asarray(myopic_length)[:, None]
    ]
    assert shown.mean() > 0.9


def test_plot_user_writes_a_png(evaluate, env_and_params, tmp_path):
    _, params = env_and_params
    _, lengths, infos = evaluate(jax.random.key(5), True)
    episode = {k: np.asarray(v[0, : int(lengths[0])]) for k, v in infos.items()}
    path = tmp_path / "user.png"
    fig = plot_user(episode, path, leave_threshold=params.leave_threshold)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="must be \\(T,\\)"):
        plot_user(jax.tree.map(np.asarray, infos))
