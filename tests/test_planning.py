"""Dynamic programming against ground truth: the three solvers agree with each
other on every gridworld layout and on Inventory, value iteration matches a plain
NumPy value iteration on random MDPs, and the greedy policy walks a shortest path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.gridworld import LAYOUTS, GridWorld
from jaxrl import planning


def numpy_value_iteration(P, R, gamma, sweeps):
    """The textbook loop, in float64."""
    V = np.zeros(P.shape[0])
    for _ in range(sweeps):
        V = (R + gamma * P @ V).max(axis=1)
    return V


def solve_all(P, R, gamma):
    """V from value iteration, policy iteration (exact and iterative evaluation) and
    the exact value of value iteration's greedy policy, in float64."""
    with jax.enable_x64():
        P, R = jnp.asarray(P, jnp.float64), jnp.asarray(R, jnp.float64)
        vi = planning.value_iteration(P, R, gamma, tol=1e-10)
        pi = planning.policy_iteration(P, R, gamma, tol=1e-10)
        mpi = planning.policy_iteration(P, R, gamma, method="iterative", tol=1e-10)
        exact = planning.policy_evaluation(P, R, gamma, vi.policy)
        iterative = planning.policy_evaluation(P, R, gamma, vi.policy, "iterative", tol=1e-10)
        assert vi.V.dtype == jnp.float64
        return vi, pi, mpi, exact, iterative


MODELS = [(layout, slip) for layout in LAYOUTS for slip in (0.0, 0.2)]


@pytest.mark.parametrize("layout, slip", MODELS)
def test_solvers_agree_on_gridworlds(layout, slip):
    env = GridWorld(layout)
    model = planning.tabular_model(env, env.default_params(slip=slip))
    vi, pi, mpi, exact, iterative = solve_all(model.P, model.R, 0.95)
    for other in (pi.V, mpi.V, exact.V, iterative.V):
        np.testing.assert_allclose(vi.V, other, atol=1e-4, rtol=0)
    assert float(vi.residual) < 1e-9 and float(exact.residual) < 1e-9
    # Both greedy policies are optimal (they may break ties differently).
    with jax.enable_x64():
        P, R = jnp.asarray(model.P, jnp.float64), jnp.asarray(model.R, jnp.float64)
        pi_value = planning.policy_evaluation(P, R, 0.95, pi.policy).V
    np.testing.assert_allclose(pi_value, vi.V, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["Inventory", "Inventory-LeadTime"])
def test_solvers_agree_on_inventory(name):
    env, params = envs.make(name)
    model = planning.tabular_model(env, params)
    vi, pi, mpi, exact, iterative = solve_all(model.P, model.R, 0.99)
    assert float(np.abs(vi.V).max()) > 100  # profits, so float64 matters at this tolerance
    for other in (pi.V, mpi.V, exact.V, iterative.V):
        np.testing.assert_allclose(vi.V, other, atol=1e-4, rtol=0)
    assert int(pi.iterations) < int(vi.iterations)


def test_float32_value_iteration_close_to_float64_on_inventory():
    """The module docstring's claim: float32 sweeps settle within rounding of the values."""
    env, params = envs.make("Inventory-LeadTime")
    model = planning.tabular_model(env, params)
    vi32 = jax.jit(planning.value_iteration)(model.P, model.R, 0.99)
    vi64 = solve_all(model.P, model.R, 0.99)[0]
    assert vi32.V.dtype == jnp.float32 and int(vi32.iterations) < 100_000
    assert np.abs(np.asarray(vi32.V, np.float64) - np.asarray(vi64.V)).max() < 3e-3
    assert float(jnp.abs(vi32.V).max()) > 500


@pytest.mark.parametrize("seed", range(4))
def test_value_iteration_matches_numpy_on_random_mdps(seed):
    rng = np.random.default_rng(seed)
    S, A = 7 + seed, 2 + seed % 3
    P = rng.dirichlet(np.ones(S) * 0.3, size=(S, A))
    R = rng.normal(size=(S, A))
    gamma = 0.9
    expected = numpy_value_iteration(P, R, gamma, 600)  # 0.9^600 ~ 1e-28: converged
    with jax.enable_x64():
        vi = planning.value_iteration(jnp.asarray(P), jnp.asarray(R), gamma, tol=1e-12)
        np.testing.assert_allclose(np.asarray(vi.V), expected, atol=1e-9, rtol=0)
        np.testing.assert_array_equal(vi.policy, (R + gamma * P @ expected).argmax(axis=1))
    # float32 inputs: float32 rounding, same answer.
    vi32 = planning.value_iteration(jnp.asarray(P, jnp.float32), jnp.asarray(R, jnp.float32), 0.9)
    np.testing.assert_allclose(np.asarray(vi32.V), expected, atol=1e-4, rtol=0)


def test_vmap_over_discounts_and_rewards_equals_single_solves():
    # In float64, so that the batched and single programs' different summation orders
    # cannot move a stopping sweep.
    rng = np.random.default_rng(0)
    with jax.enable_x64():
        P = jnp.asarray(rng.dirichlet(np.ones(6), size=(6, 3)))
        R = jnp.asarray(rng.normal(size=(4, 6, 3)))
        gammas = jnp.asarray([0.0, 0.5, 0.9, 0.99])
        solve = jax.vmap(planning.value_iteration, in_axes=(None, 0, 0))
        batched = jax.jit(solve)(P, R, gammas)
        for i in range(4):
            single = planning.value_iteration(P, R[i], gammas[i])
            np.testing.assert_allclose(batched.V[i], single.V, atol=1e-10, rtol=0)
            assert int(batched.iterations[i]) == int(single.iterations)
        # gamma = 0: one sweep gives max_a R, then a sweep that changes nothing.
        np.testing.assert_allclose(batched.V[0], R[0].max(axis=1), atol=1e-12)
        assert int(batched.iterations[0]) == 2
        assert int(batched.iterations[3]) > int(batched.iterations[2]) > 2


def test_greedy_policy_walks_a_shortest_path_on_empty_8x8():
    env = GridWorld("empty-8x8")
    params = env.default_params(slip=0.0)
    model = env.tabular_model(params)
    solution = planning.value_iteration(model.P, model.R, 0.99)
    state, _ = env.reset(jax.random.key(0), params)
    steps, terminated = 0, False
    while not terminated and steps < 100:
        action = solution.policy[env.state_index(state, params)]
        state, ts = env.step(jax.random.key(steps), state, action, params)
        steps, terminated = steps + 1, bool(ts.terminated)
    assert terminated and np.all(np.asarray(state.pos) == np.asarray(params.goal))
    assert steps == env.shortest_path_length(params) == 10


def test_policy_evaluation_of_a_stochastic_policy_is_the_mean_of_its_actions_values():
    """A two-state chain solved by hand: from state 0 action 0 stays (reward 1),
    action 1 moves to the absorbing state 1 (reward 0). The uniform policy's value
    solves V0 = 0.5 * (1 + g * V0), so V0 = 0.5 / (1 - 0.5 g) = 0.5 / 0.55 at g = 0.9."""
    P = jnp.asarray([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    R = jnp.asarray([[1.0, 0.0], [0.0, 0.0]])
    uniform = jnp.full((2, 2), 0.5)
    for method in ("exact", "iterative"):
        result = planning.policy_evaluation(P, R, 0.9, uniform, method)
        np.testing.assert_allclose(result.V, [0.5 / 0.55, 0.0], atol=1e-5)
    # The optimum stays forever: V0 = 1 / (1 - 0.9) = 10.
    np.testing.assert_allclose(planning.value_iteration(P, R, 0.9).V, [10.0, 0.0], atol=1e-4)


@pytest.mark.parametrize(
    "P, R, gamma, match",
    [
        (np.full((2, 1, 2), 0.5), np.zeros((2, 1)), 1.0, r"gamma=1.0 .* \[0, 1\)"),
        (np.full((2, 1, 2), 0.5), np.zeros((2, 1)), -0.1, r"gamma=-0.1 .* \[0, 1\)"),
        (np.full((2, 1, 2), 0.6), np.zeros((2, 1)), 0.9, r"not stochastic.*sums to 1.2"),
        (
            np.array([[[1.5, -0.5]], [[0.0, 1.0]]]),
            np.zeros((2, 1)),
            0.9,
            "not stochastic.*>= 0",
        ),
        (np.full((2, 1, 2), 0.5), np.zeros((3, 1)), 0.9, r"R has shape \(3, 1\)"),
        (np.full((2, 1, 3), 0.5), np.zeros((2, 1)), 0.9, r"P has shape \(2, 1, 3\)"),
    ],
)
def test_bad_models_raise(P, R, gamma, match):
    for solve in (planning.value_iteration, planning.policy_iteration):
        with pytest.raises(ValueError, match=match):
            solve(jnp.asarray(P), jnp.asarray(R), gamma)


def test_env_without_tabular_model_raises():
    env, params = envs.make("gymnax:CartPole-v1")
    with pytest.raises(ValueError, match="has no tabular model"):
        planning.tabular_model(env, params)
    env, params = envs.make("GridWorld-Maze")
    with pytest.raises(ValueError, match="RandomMaze has no tabular model"):
        planning.tabular_model(env, params)
