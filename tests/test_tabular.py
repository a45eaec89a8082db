"""Tabular TD control against ground truth from the exact model: Q-learning finds
Q*, Expected SARSA and SARSA under a uniform behaviour evaluate the uniform policy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import wrappers
from envs.gridworld import GridWorld
from jaxrl import planning
from jaxrl.agents import tabular
from jaxrl.exploration import epsilon_greedy

# Deterministic (no slip), with a lava cell to avoid: 15 states, 2 of them terminal.
SMALL_MAP = """
######
#S...#
#.#..#
#..L.#
#...G#
######
"""
GAMMA = 0.9
SEEDS = 8


@pytest.fixture(scope="module")
def small():
    raw = GridWorld(ascii_map=SMALL_MAP)
    params = raw.default_params()
    env = wrappers.EpisodeStatistics(wrappers.AutoReset(wrappers.TimeLimit(raw, 50)))
    return env, params, raw.tabular_model(params)


def run(env, params, rule, hp, total_steps, seeds=SEEDS):
    config = tabular.TabularConfig(rule=rule, total_steps=total_steps, rollout_len=500)
    train = jax.jit(jax.vmap(tabular.make_train(config, env, params), in_axes=(0, None)))
    return train(jax.random.split(jax.random.key(0), seeds), hp)


def uniform_q(model):
    V = planning.policy_evaluation(model.P, model.R, GAMMA, jnp.full(model.R.shape, 0.25)).V
    return planning.bellman_q(model.P, model.R, GAMMA, V)


UNIFORM = tabular.TabularHParams(lr=0.5, gamma=GAMMA, eps_start=1.0, eps_end=1.0)


def test_q_learning_converges_to_q_star(small):
    env, params, model = small
    q_star = planning.value_iteration(model.P, model.R, GAMMA).Q
    # Off-policy: a uniform behaviour visits every (s, a); deterministic, so lr 0.5 converges.
    state, metrics = run(env, params, "q_learning", UNIFORM, 20_000)
    error = jnp.abs(state.q - q_star[None]).max(axis=(1, 2))
    assert float(error.max()) < 0.05, error
    assert metrics["episodes"].shape == (SEEDS, 40)
    assert float(metrics["td_abs"][:, -1].mean()) < float(metrics["td_abs"][:, 0].mean())


def test_expected_sarsa_evaluates_its_behaviour_policy(small):
    env, params, model = small
    state, _ = run(env, params, "expected_sarsa", UNIFORM, 20_000)
    error = jnp.abs(state.q - uniform_q(model)[None]).max(axis=(1, 2))
    assert float(error.max()) < 0.05, error


def test_sarsa_evaluates_its_behaviour_policy(small):
    env, params, model = small
    # Sampled next actions make SARSA's targets noisy: a small step size averages them.
    hp = UNIFORM.replace(lr=0.02)
    state, _ = run(env, params, "sarsa", hp, 100_000)
    error = jnp.abs(state.q - uniform_q(model)[None]).max(axis=(1, 2))
    assert float(error.mean()) < 0.15, error


def test_greedy_policy_of_q_learning_reaches_goal_by_shortest_path(small):
    env, params, model = small
    state, _ = run(env, params, "q_learning", UNIFORM, 20_000, seeds=1)
    config = tabular.TabularConfig()
    learned = jax.tree.map(lambda x: x[0], state)
    act = tabular.make_policy(config, env, params, learned)
    raw = env.unwrapped
    s, ts = raw.reset(jax.random.key(0), params)
    steps = 0
    while not bool(ts.terminated) and steps < 20:
        action = act(jax.random.key(steps), ts.obs[None])[0]
        s, ts = raw.step(jax.random.key(steps), s, action, params)
        steps += 1
    assert bool(ts.terminated) and float(ts.reward) > 0
    assert steps == raw.shortest_path_length(params)


def test_vmap_over_hparams_equals_single_runs(small):
    env, params, _ = small
    config = tabular.TabularConfig(total_steps=1_000, rollout_len=100)
    train = tabular.make_train(config, env, params)
    keys = jax.random.split(jax.random.key(1), 2)
    rows = [UNIFORM.replace(lr=0.1), UNIFORM.replace(lr=0.3, eps_end=0.1)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *rows)
    batched, metrics = jax.jit(jax.vmap(train))(keys, stacked)
    for i, hp in enumerate(rows):
        single, single_metrics = jax.jit(train)(keys[i], hp)
        np.testing.assert_allclose(batched.q[i], single.q, atol=1e-6)
        np.testing.assert_allclose(metrics["epsilon"][i], single_metrics["epsilon"], atol=1e-6)
    assert not np.allclose(batched.q[0], batched.q[1])


def test_next_value_rules():
    q_next = jnp.asarray([[1.0, 3.0, 3.0, 0.0]])
    eps = 0.2
    assert float(tabular.next_value(q_next, None, eps, "q_learning")[0]) == 3.0
    assert float(tabular.next_value(q_next, jnp.asarray([3]), eps, "sarsa")[0]) == 0.0
    # Greedy mass 0.8 split over the two maxima, 0.05 on each action: 0.8 * 3 + 0.05 * 7.
    expected = tabular.next_value(q_next, None, eps, "expected_sarsa")[0]
    np.testing.assert_allclose(float(expected), 0.8 * 3 + 0.05 * 7, rtol=1e-6)


def test_td_update_averages_one_pairs_errors():
    q = jnp.zeros((2, 2))
    s, a = jnp.asarray([0, 0, 1]), jnp.asarray([1, 1, 0])
    q, td = tabular.td_update(q, s, a, jnp.asarray([1.0, 3.0, -2.0]), 0.5)
    # (0, 1): mean error 2, times 0.5; (1, 0): -2 times 0.5.
    np.testing.assert_allclose(q, [[0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(td, [1.0, 3.0, -2.0])


def test_greedy_breaks_ties_at_random():
    q = jnp.zeros((1000, 4)).at[:, 3].set(-1.0)
    actions = epsilon_greedy(jax.random.key(0), q, 0.0, random_ties=True)
    counts = np.bincount(np.asarray(actions), minlength=4)
    assert counts[3] == 0 and counts[:3].min() > 250


@pytest.mark.parametrize("name, mode", [("GridWorld-FourRooms", "onehot"), ("Inventory", None)])
def test_observation_index_is_state_index(name, mode):
    env, params = envs.make(name, raw=True, **({"obs_mode": mode} if mode else {}))
    model = env.tabular_model(params)
    assert env.num_states(params) == model.P.shape[0]
    key = jax.random.key(0)
    state, ts = env.reset(key, params)
    seen = set()
    for _ in range(60):
        key, act_key, step_key = jax.random.split(key, 3)
        action = env.action_space(params).sample(act_key)
        state, ts = env.step(step_key, state, action, params)
        index = int(env.observation_index(ts.obs, params))
        assert index == int(env.state_index(state, params))
        seen.add(index)
    assert len(seen) > 5


def test_bad_inputs_raise(small):
    env, params, _ = small
    with pytest.raises(ValueError, match="rule='td' is not allowed"):
        tabular.TabularConfig(rule="td")
    with pytest.raises(ValueError, match="num_envs=0"):
        tabular.TabularConfig(num_envs=0)
    cartpole, cartpole_params = envs.make("gymnax:CartPole-v1")
    with pytest.raises(ValueError, match="has no discrete state index"):
        tabular.make_train(tabular.TabularConfig(), cartpole, cartpole_params)
    ego, ego_params = envs.make("GridWorld-FourRooms", obs_mode="egocentric")
    with pytest.raises(ValueError, match="egocentric"):
        tabular.make_train(tabular.TabularConfig(), ego, ego_params)
    with pytest.raises(ValueError, match="lr=0.0"):
        tabular.TabularHParams(lr=0.0).validate()
