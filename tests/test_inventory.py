"""Tests for ``envs.inventory``: params validation, step invariants (hypothesis), the
tabular model against sampled steps and an independent Poisson sampler, and the plot.

Every jitted function is compiled once per variant (module-scoped fixtures; the
static sizes and ``max_demand`` stay fixed while traced params vary), and the
tests assert that through ``CountingJit.traces``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import envs
from envs.inventory import (
    COST_KEYS,
    COUNT_KEYS,
    Inventory,
    InventoryParams,
    InventoryState,
    demand_support,
    plot_episode,
    sample_demand,
    state_index,
    tabular_model,
)

VARIANTS = ("Inventory", "Inventory-LeadTime")
T = 64  # steps per property-test rollout
MAX_RATE = 8.0
MAX_DEMAND = demand_support(MAX_RATE)  # fixed so hypothesis draws of demand_rate never recompile


class CountingJit:
    """``jax.jit(fn)`` that counts how often ``fn`` is traced (i.e. compiled)."""

    def __init__(self, fn):
        self.fn, self.traces = fn, 0
        self._jitted = jax.jit(self._traced)

    def _traced(self, *args):
        self.traces += 1
        return self.fn(*args)

    def __call__(self, *args):
        return self._jitted(*args)


def make_rollout(env):
    """rollout(key, params, actions): pre-step states, timesteps, obs-in-space flags."""

    def rollout(key, params, actions):
        reset_key, key = jax.random.split(key)
        state0, ts0 = env.reset(reset_key, params)
        space = env.observation_space(params)

        def body(state, inputs):
            step_key, action = inputs
            next_state, ts = env.step(step_key, state, action, params)
            return next_state, (state, ts, space.contains(ts.obs))

        keys = jax.random.split(key, actions.shape[0])
        _, (states, traj, inside) = jax.lax.scan(body, state0, (keys, actions))
        return ts0, space.contains(ts0.obs), states, traj, inside

    return CountingJit(rollout)


@pytest.fixture(scope="module")
def variants():
    """name -> (env, default params, compiled rollout)."""
    out = {}
    for name in VARIANTS:
        env, params = envs.make(name, raw=True)
        out[name] = (env, params, make_rollout(env))
    return out


# Params and construction ----------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("capacity", 0),
        ("capacity", 2.5),
        ("max_order", 0),
        ("lead_time", -1),
        ("demand_rate", 0.0),
        ("demand_rate", -1.0),
        ("demand_rate", float("nan")),
        ("price", -1.0),
        ("unit_cost", -0.5),
        ("holding_cost", -1.0),
        ("lost_sales_penalty", -2.0),
        ("fixed_order_cost", -1.0),
        ("initial_stock", -1),
        ("initial_stock", 21),
        ("initial_stock", 2.5),
        ("max_demand", 3),
    ],
)
def test_bad_params_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Inventory().default_params(**{field: value})


def test_bad_constructor_defaults_and_unknown_fields_raise():
    with pytest.raises(ValueError, match="capacity"):
        Inventory(capacity=0)
    with pytest.raises(ValueError, match="no field"):
        Inventory().default_params(shelf=3)
    with pytest.raises(ValueError, match="demand_rate"):
        InventoryParams(demand_rate=-1.0)


def test_registry_variants_and_defaults():
    env, params = envs.make("Inventory", raw=True)
    assert env.name == "Inventory" and params.lead_time == 0
    assert (params.capacity, params.max_order) == (20, 10)
    env, params = envs.make("Inventory-LeadTime", raw=True)
    assert env.name == "Inventory-LeadTime" and params.lead_time == 2
    assert (params.capacity, params.max_order) == (12, 5)
    # The sampler's support follows an overridden demand rate unless set explicitly.
    assert Inventory().default_params(demand_rate=20.0).max_demand == demand_support(20.0)
    assert demand_support(20.0) > Inventory().default_params().max_demand
    # Batched (vmappable) params validate against their largest rate.
    batched = InventoryParams(demand_rate=jnp.array([1.0, 6.0]))
    assert batched.max_demand == demand_support(6.0)


def test_spaces_and_info_structure_match_between_reset_and_step(variants):
    for env, params, _ in variants.values():
        key = jax.random.key(0)
        state0, ts0 = jax.eval_shape(env.reset, key, params)
        _, ts1 = jax.eval_shape(env.step, key, state0, jnp.int32(3), params)
        shapes = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)
        assert shapes(ts0) == shapes(ts1)
        assert set(ts1.info) == set(COUNT_KEYS + COST_KEYS)
        assert all(ts1.info[k].dtype == jnp.int32 for k in COUNT_KEYS)
        assert all(ts1.info[k].dtype == jnp.float32 for k in COST_KEYS)
        assert ts1.obs.shape == (1 + params.lead_time,) and ts1.obs.dtype == jnp.float32
        assert env.action_space(params).n == params.max_order + 1
        assert env.observation_space(params).shape == ts1.obs.shape


# Step invariants ------------------------------------------------------------------


def _grid(low, high, step=0.25):
    """Floats on a grid, exact in float32, so expected costs compare exactly."""
    return st.integers(round(low / step), round(high / step)).map(lambda i: i * step)


def _param_draws(capacity):
    return st.fixed_dictionaries(
        {
            "demand_rate": _grid(0.25, MAX_RATE),
            "price": _grid(0.0, 20.0),
            "unit_cost": _grid(0.0, 10.0),
            "holding_cost": _grid(0.0, 3.0),
            "lost_sales_penalty": _grid(0.0, 5.0),
            "fixed_order_cost": _grid(0.0, 10.0),
            "initial_stock": st.integers(0, capacity),
        }
    )


def _check_rollout(env, params, actions, out):
    ts0, inside0, states, traj, inside = jax.device_get(out)
    info, lead, cap = traj.info, params.lead_time, params.capacity
    assert inside0 and inside.all(), "observation outside the observation space"
    assert ts0.obs[0] == params.initial_stock and not ts0.obs[1:].any()
    assert all(not np.any(ts0.info[k]) for k in COUNT_KEYS if k != "stock")
    stock, pipeline = states.stock, states.pipeline  # pre-step, (T,), (T, L)
    # Stock stays in [0, capacity], and so does everything on order.
    assert (info["stock"] >= 0).all() and (info["stock"] <= cap).all()
    assert (stock + pipeline.sum(1) <= cap).all()
    # Conservation, and the next step starts from this step's end stock.
    np.testing.assert_array_equal(info["stock"], stock + info["arrived"] - info["sales"])
    np.testing.assert_array_equal(stock[1:], info["stock"][:-1])
    np.testing.assert_array_equal(info["sales"] + info["lost_sales"], info["demand"])
    assert (info["sales"] <= stock + info["arrived"]).all() and (info["lost_sales"] >= 0).all()
    # Orders: clipped to [0, max_order], then cut to the free room.
    room = cap - stock - pipeline.sum(1)
    np.testing.assert_array_equal(
        info["order"], np.minimum(np.clip(actions, 0, params.max_order), room)
    )
    # Pipeline: the oldest order arrives, the new one joins at the back.
    if lead == 0:
        np.testing.assert_array_equal(info["arrived"], info["order"])
    else:
        np.testing.assert_array_equal(info["arrived"], pipeline[:, 0])
        np.testing.assert_array_equal(pipeline[1:, :-1], pipeline[:-1, 1:])
        np.testing.assert_array_equal(pipeline[1:, -1], info["order"][:-1])
        np.testing.assert_array_equal(info["arrived"][lead:], info["order"][:-lead])
    np.testing.assert_array_equal(traj.obs[:, 0], info["stock"])
    np.testing.assert_array_equal(traj.obs[:-1, 1:], pipeline[1:])
    # The reward is the period's profit, and the components are what they say.
    np.testing.assert_allclose(info["revenue"], params.price * info["sales"], rtol=1e-6)
    np.testing.assert_allclose(info["holding_cost"], params.holding_cost * info["stock"], rtol=1e-6)
    np.testing.assert_allclose(
        info["lost_sales_cost"], params.lost_sales_penalty * info["lost_sales"], rtol=1e-6
    )
    expected_order_cost = params.unit_cost * info["order"] + params.fixed_order_cost * (
        info["order"] > 0
    )
    np.testing.assert_allclose(info["order_cost"], expected_order_cost, rtol=1e-6, atol=1e-5)
    profit = info["revenue"] - info["order_cost"] - info["holding_cost"] - info["lost_sales_cost"]
    np.testing.assert_allclose(traj.reward, profit, rtol=1e-5, atol=1e-4)
    assert not traj.terminated.any() and not traj.truncated.any()


@pytest.mark.parametrize("name", VARIANTS)
def test_step_invariants_hold_for_random_actions_and_params(variants, name):
    env, defaults, rollout = variants[name]

    @settings(max_examples=12, deadline=None, derandomize=True)
    @given(
        draws=_param_draws(defaults.capacity),
        actions=st.lists(st.integers(-2, defaults.max_order + 3), min_size=T, max_size=T),
        seed=st.integers(0, 2**31 - 1),
    )
    def check(draws, actions, seed):
        params = env.default_params(max_demand=MAX_DEMAND, **draws)
        actions = np.asarray(actions, np.int32)
        out = rollout(jax.random.key(seed), params, jnp.asarray(actions))
        _check_rollout(env, params, actions, out)

    check()
    assert rollout.traces == 1


def test_same_key_same_rollout_and_demand_varies(variants):
    env, params, rollout = variants["Inventory"]
    params = params.replace(initial_stock=10, max_demand=MAX_DEMAND)
    actions = jnp.full((T,), 5, jnp.int32)
    a = jax.device_get(rollout(jax.random.key(1), params, actions))
    b = jax.device_get(rollout(jax.random.key(1), params, actions))
    c = jax.device_get(rollout(jax.random.key(2), params, actions))
    np.testing.assert_array_equal(a[3].info["demand"], b[3].info["demand"])
    assert not np.array_equal(a[3].info["demand"], c[3].info["demand"])
    assert rollout.traces == 1


# Demand sampler --------------------------------------------------------------------


def test_demand_sampler_matches_the_poisson_law():
    n = 100_000
    draw = CountingJit(jax.vmap(sample_demand, in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(3), n)
    for rate in (0.7, 5.0, MAX_RATE):
        params = InventoryParams(demand_rate=rate, max_demand=MAX_DEMAND)
        demand = np.asarray(draw(keys, params))
        assert demand.min() >= 0 and demand.max() <= MAX_DEMAND
        freq = np.bincount(demand, minlength=MAX_DEMAND + 1) / n
        pmf = stats.poisson.pmf(np.arange(MAX_DEMAND + 1), rate)
        tol = 5 * np.sqrt(pmf * (1 - pmf) / n) + 2 / n
        np.testing.assert_array_less(np.abs(freq - pmf), tol)
    assert draw.traces == 1  # max_demand is fixed, so one compile serves every rate


# Tabular model ---------------------------------------------------------------------

# (stock, pipeline, action): empty shelf, orders cut by the room, a full shelf, plain cases.
PAIRS = {
    "Inventory": [(0, (), 10), (3, (), 0), (10, (), 3), (15, (), 10), (20, (), 5)],
    "Inventory-LeadTime": [
        (0, (0, 0), 5),
        (2, (3, 1), 5),
        (12, (0, 0), 4),
        (4, (5, 3), 5),
        (1, (0, 5), 2),
        (6, (2, 0), 5),
    ],
}


@pytest.fixture(scope="module")
def models(variants):
    return {name: tabular_model(params) for name, (_, params, _) in variants.items()}


@pytest.mark.parametrize("name", VARIANTS)
def test_tabular_model_structure(variants, models, name):
    env, params, _ = variants[name]
    model = models[name]
    states = np.asarray(model.states)
    num_states, num_actions = model.R.shape
    assert model.P.shape == (num_states, num_actions, num_states)
    assert model.P.dtype == jnp.float32 and model.R.dtype == jnp.float32
    assert num_actions == params.max_order + 1
    np.testing.assert_allclose(np.asarray(model.P).sum(-1), 1.0, atol=1e-6)
    assert (np.asarray(model.P) >= 0).all()
    # Every state is enumerated exactly once, and state_index inverts the enumeration.
    assert len({tuple(s) for s in states}) == num_states
    assert (states >= 0).all() and (states.sum(1) <= params.capacity).all()
    assert (states[:, 1:] <= params.max_order).all()
    as_state = InventoryState(jnp.asarray(states[:, 0]), jnp.asarray(states[:, 1:]))
    index = jax.jit(jax.vmap(state_index, in_axes=(0, None)))(as_state, params)
    np.testing.assert_array_equal(index, np.arange(num_states))
    state0, _ = env.reset(jax.random.key(0), params)
    assert int(state_index(state0, params)) == int(model.initial_state)


@pytest.mark.parametrize("name", VARIANTS)
def test_tabular_model_matches_sampled_steps(variants, models, name):
    """Next-state frequencies and mean rewards of ``step`` from fixed (state, action)."""
    env, params, _ = variants[name]
    model, n = models[name], 20_000

    def sample(keys, state, action):
        def one(key):
            next_state, ts = env.step(key, state, action, params)
            return state_index(next_state, params), ts.reward

        return jax.vmap(one)(keys)

    sample = CountingJit(sample)

    for i, (stock, pipeline, action) in enumerate(PAIRS[name]):
        state = InventoryState(jnp.int32(stock), jnp.asarray(pipeline, jnp.int32))
        keys = jax.random.split(jax.random.key(100 + i), n)
        next_index, reward = jax.device_get(sample(keys, state, jnp.int32(action)))
        s = int(state_index(state, params))
        p = np.asarray(model.P[s, action], np.float64)
        freq = np.bincount(next_index, minlength=p.shape[0]) / n
        tol = 5 * np.sqrt(p * (1 - p) / n) + 2 / n
        np.testing.assert_array_less(np.abs(freq - p), tol, err_msg=f"{state}, a={action}")
        stderr = reward.std() / np.sqrt(n)
        assert abs(reward.mean() - float(model.R[s, action])) < 5 * stderr + 1e-3
    assert sample.traces == 1


def test_expected_reward_matches_independent_monte_carlo_and_exact_sum(variants, models):
    """R(stock=y, order 0) for lead time 0, against NumPy's Poisson sampler and a direct sum.

    With no order the period's profit is ``price*min(y,D) - h*(y-D)^+ - pen*(D-y)^+``.
    """
    _, params, _ = variants["Inventory"]
    model = models["Inventory"]
    rate, n = params.demand_rate, 400_000
    demand = np.random.default_rng(0).poisson(rate, n)
    support = np.arange(200)
    pmf = stats.poisson.pmf(support, rate)

    def profit(y, d):
        sales = np.minimum(y, d)
        return (
            params.price * sales
            - params.holding_cost * (y - sales)
            - params.lost_sales_penalty * (d - sales)
        )

    for y in range(params.capacity + 1):
        s = int(state_index(InventoryState(jnp.int32(y), jnp.zeros((0,), jnp.int32)), params))
        r = float(model.R[s, 0])
        np.testing.assert_allclose(r, np.sum(pmf * profit(y, support)), rtol=1e-5, atol=1e-4)
        samples = profit(y, demand)
        assert abs(samples.mean() - r) < 5 * samples.std() / np.sqrt(n) + 1e-3


def _episode_profit(P, R, start, policy, steps=100):
    """Exact expected 100-step profit of a deterministic policy from state ``start``."""
    rows = np.arange(R.shape[0])
    p_pi, r_pi = P[rows, policy], R[rows, policy]
    dist, total = np.eye(R.shape[0])[start], 0.0
    for _ in range(steps):
        total, dist = total + dist @ r_pi, dist @ p_pi
    return total


def test_default_costs_make_good_policies_profitable(models):
    """An optimal policy (value iteration on the model) earns clearly positive profit over
    the 100-step episode; never ordering and always ordering the maximum do worse."""
    for model in models.values():
        P, R = np.asarray(model.P, np.float64), np.asarray(model.R, np.float64)
        num_states, num_actions = R.shape
        values = np.zeros(num_states)
        for _ in range(100):  # finite-horizon DP, the registry's time limit
            q = R + P @ values
            values = q.max(1)
        start = int(model.initial_state)

        best = values[start]
        never = _episode_profit(P, R, start, np.zeros(num_states, int))
        always_max = _episode_profit(P, R, start, np.full(num_states, num_actions - 1))
        assert best > 300 and never < 0
        assert always_max < 0.5 * best


def test_tabular_model_rejects_large_or_traced_params():
    with pytest.raises(ValueError, match="states"):
        tabular_model(Inventory().default_params(capacity=60, max_order=30, lead_time=3))
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda p: tabular_model(p).R)(Inventory().default_params())


# Plot ------------------------------------------------------------------------------


def test_plot_episode_writes_a_png(variants, tmp_path):
    env, params, rollout = variants["Inventory-LeadTime"]
    params = params.replace(initial_stock=6, max_demand=MAX_DEMAND)
    actions = jnp.full((T,), 2, jnp.int32)
    _, _, _, traj, _ = rollout(jax.random.key(0), params, actions)
    path = tmp_path / "episode.png"
    fig = plot_episode(jax.device_get(traj.info), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) >= 3
    assert rollout.traces == 1
    with pytest.raises(ValueError, match="1-D"):
        plot_episode({k: np.zeros((2, 3)) for k in COUNT_KEYS + COST_KEYS})
