"""Single-product periodic-review inventory control with lost sales and an order lead time.

The classic lost-sales inventory model (P. H. Zipkin, "Old and new methods for
lost-sales inventory systems", Operations Research 56(5), 2008; E. L. Porteus,
*Foundations of Stochastic Inventory Theory*, Stanford University Press, 2002,
ch. 4-6): each period the agent orders ``a in {0, .., max_order}`` units, which
arrive ``lead_time`` periods later; demand is Poisson(``demand_rate``); demand
that the stock cannot meet is lost.

Order of events in one period (``step``):

1. The order is clipped to ``[0, max_order]`` and further limited to the free
   room, so that ``stock + pipeline + order <= capacity``: the supplier never
   delivers more than fits, so no unit is ever discarded and stock is conserved
   exactly (``stock' = stock + arrived - sales``).
2. The order is paid: ``unit_cost * order + fixed_order_cost * (order > 0)``.
3. The order due now arrives: the one placed ``lead_time`` periods ago, or with
   ``lead_time == 0`` the order just placed.
4. Demand ``d`` is drawn; ``sales = min(stock + arrived, d)``, ``lost = d - sales``.
5. Holding cost is charged on the end-of-period stock.
6. ``reward = price * sales - order costs - holding_cost * stock'
   - lost_sales_penalty * lost``: the period's profit.

The episode never terminates; ``envs.make`` adds a 100-step time limit
(truncation). The state is the stock and the pipeline of outstanding orders,
oldest first (``pipeline[0]`` arrives in the next period); the observation is
the float32 vector ``[stock, pipeline[0], .., pipeline[lead_time - 1]]``.
``info`` reports ``demand``, ``sales``, ``lost_sales``, ``order`` (effective),
``arrived`` and ``stock`` (end of period) as int32, and the profit components
``revenue``, ``order_cost``, ``holding_cost`` and ``lost_sales_cost`` as float32
(all zero after ``reset``, except ``stock``).

``tabular_model(params)`` gives the exact MDP (``P``, ``R`` and the state
enumeration) for dynamic programming; ``plot_episode`` draws one episode.

Deviations: (a) orders that would overfill the shelf are cut (step 1) instead
of delivered and thrown away; (b) demand is sampled by inverting the Poisson CDF
on ``0 .. max_demand`` with one uniform draw, the tail ``P(D > max_demand)``
(at most ``DEMAND_TAIL_TOL`` = 1e-7, about the resolution of a float32 uniform)
being lumped onto ``max_demand``. ``jax.random.poisson`` runs a data-dependent
loop which, batched over 4096 envs on CPU, made a full training-stack step about
9x slower (1.3M vs 12M steps/s). The tabular model uses the exact, untruncated
Poisson law.

Why hand-written: no JAX environment library (gymnax, Brax, Jumanji, pgx)
offers an inventory model; OR-Gym's ``Inventory`` environments are NumPy/Gym,
multi-echelon and not jittable.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs._validation import apply_overrides, check_range, concrete
from envs.core import Environment, restart, transition
from envs.spaces import Box, Discrete

DEMAND_TAIL_TOL = 1e-7
"""Largest allowed Poisson tail mass ``P(D > max_demand)`` lumped onto ``max_demand``."""
MAX_DEMAND_RATE = 10_000.0
MAX_TABULAR_STATES = 20_000
MAX_TABULAR_ENTRIES = 100_000_000
"""Largest ``S * A * S`` for which ``tabular_model`` builds P (400 MB of float32)."""

# Defaults for lead time 0 and for positive lead times: small enough for the exact
# tabular model, demand sized so an optimal policy rarely hits the shelf limit.
_SIZE_DEFAULTS = {
    False: {"capacity": 20, "max_order": 10, "demand_rate": 5.0},
    True: {"capacity": 12, "max_order": 5, "demand_rate": 2.0},
}

_NONNEGATIVE_FIELDS = (
    "price",
    "unit_cost",
    "holding_cost",
    "lost_sales_penalty",
    "fixed_order_cost",
)
COUNT_KEYS = ("demand", "sales", "lost_sales", "order", "arrived", "stock")
COST_KEYS = ("revenue", "order_cost", "holding_cost", "lost_sales_cost")


def _poisson_pmf(rate: float, n: int) -> np.ndarray:
    """``P(D = k)`` for ``k = 0 .. n - 1`` in float64 (log space, so large rates are fine)."""
    k = np.arange(n, dtype=np.float64)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, max(n, 1))))])[:n]
    return np.exp(k * math.log(rate) - rate - log_factorial)


def demand_support(rate: float, tol: float = DEMAND_TAIL_TOL) -> int:
    """The smallest ``m`` with ``P(D > m) <= tol`` for ``D ~ Poisson(rate)``."""
    n = int(rate + 12.0 * math.sqrt(rate) + 30.0)
    tail = 1.0 - np.cumsum(_poisson_pmf(rate, n))  # tail[m] = P(D > m)
    return int(np.argmax(tail <= tol))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_int(owner: str, name: str, value: Any, low: int) -> None:
    if not _is_int(value):
        raise ValueError(f"{owner}.{name}={value!r} is not allowed; it must be an int >= {low}")
    check_range(owner, name, value, low)


@struct.dataclass
class InventoryParams:
    capacity: int = struct.field(pytree_node=False, default=20)
    """Shelf capacity: stock plus outstanding orders never exceed it (static, >= 1)."""
    max_order: int = struct.field(pytree_node=False, default=10)
    """Largest order per period; the action space is ``Discrete(max_order + 1)`` (static, >= 1)."""
    lead_time: int = struct.field(pytree_node=False, default=0)
    """Periods between placing and receiving an order; 0 delivers at once (static, >= 0)."""
    max_demand: int | None = struct.field(pytree_node=False, default=None)
    """Demand sampler's support ``0 .. max_demand`` (static); None picks the smallest value
    with ``P(D > max_demand) <= 1e-7`` for ``demand_rate`` (the largest one, for batched
    rates). Larger values are always valid; ``default_params(demand_rate=...)`` re-derives
    it, while ``params.replace(demand_rate=...)`` with a larger rate needs
    ``max_demand=None`` (or a larger value) too, else a ValueError says so."""
    demand_rate: float = 5.0
    """Mean demand per period, Poisson (in (0, 10000])."""
    price: float = 10.0
    """Revenue per unit sold (>= 0)."""
    unit_cost: float = 4.0
    """Purchase cost per unit ordered, paid when ordering (>= 0)."""
    holding_cost: float = 1.0
    """Cost per unit in stock at the end of a period (>= 0)."""
    lost_sales_penalty: float = 2.0
    """Goodwill cost per unit of unmet demand, on top of the lost margin (>= 0)."""
    fixed_order_cost: float = 5.0
    """Cost of placing any nonzero order (>= 0)."""
    initial_stock: int | None = None
    """Stock at reset (pipeline empty), in ``[0, capacity]``; None gives ``capacity // 2``."""

    def __post_init__(self):
        owner = type(self).__name__
        _check_int(owner, "capacity", self.capacity, 1)
        _check_int(owner, "max_order", self.max_order, 1)
        _check_int(owner, "lead_time", self.lead_time, 0)
        # The cap bounds max_demand, i.e. the sampler's work per step.
        check_range(owner, "demand_rate", self.demand_rate, 0.0, MAX_DEMAND_RATE, low_open=True)
        for name in _NONNEGATIVE_FIELDS:
            check_range(owner, name, getattr(self, name), 0.0)
        if self.initial_stock is not None:
            check_range(owner, "initial_stock", self.initial_stock, 0, self.capacity)
            stock = concrete(self.initial_stock)
            if stock is not None and np.any(np.floor(stock) != stock):
                raise ValueError(
                    f"{owner}.initial_stock={self.initial_stock} is not allowed; it must be an "
                    f"integer in [0, {self.capacity}]"
                )
        rate = concrete(self.demand_rate)
        if self.max_demand is None:
            if rate is None:
                raise ValueError(
                    f"{owner}.max_demand=None needs a concrete demand_rate; set max_demand "
                    "explicitly when building params from traced values"
                )
            # Static fields survive pytree rebuilds, so this runs once, at construction.
            object.__setattr__(self, "max_demand", demand_support(float(np.max(rate))))
        _check_int(owner, "max_demand", self.max_demand, 1)
        if rate is not None and np.all(rate > 0):
            needed = demand_support(float(np.max(rate)))
            if self.max_demand < needed:
                raise ValueError(
                    f"{owner}.max_demand={self.max_demand} is not allowed for "
                    f"demand_rate={float(np.max(rate)):g}; it must be >= {needed} so that "
                    f"P(demand > max_demand) <= {DEMAND_TAIL_TOL:g} (or leave it None)"
                )


@struct.dataclass
class InventoryState:
    stock: jax.Array
    """int32 scalar: units on the shelf."""
    pipeline: jax.Array
    """(lead_time,) int32: outstanding orders, oldest (next to arrive) first."""


def _initial_stock(params: InventoryParams) -> jax.Array:
    stock = params.capacity // 2 if params.initial_stock is None else params.initial_stock
    return jnp.asarray(stock, jnp.int32)


def sample_demand(key: jax.Array, params: InventoryParams) -> jax.Array:
    """One Poisson(``demand_rate``) draw, int32 in ``0 .. max_demand`` (inverse CDF).

    With unbatched params the CDF is computed once per batch under ``vmap``; the
    per-env work is one uniform and ``max_demand`` comparisons.
    """
    k = jnp.arange(params.max_demand, dtype=jnp.float32)
    rate = jnp.asarray(params.demand_rate, jnp.float32)
    cdf = jnp.cumsum(jnp.exp(k * jnp.log(rate) - rate - jax.lax.lgamma(k + 1.0)))
    u = jax.random.uniform(key, (), jnp.float32)
    return jnp.sum(cdf <= u, dtype=jnp.int32)


def _observe(stock: jax.Array, pipeline: jax.Array) -> jax.Array:
    return jnp.concatenate([stock[None], pipeline]).astype(jnp.float32)


class Inventory(Environment[InventoryState, InventoryParams]):
    """Periodic-review lost-sales inventory; see the module docstring.

    Args:
        lead_time: order lead time in periods (0: ``"Inventory"``, >= 1:
            ``"Inventory-LeadTime"``). Positive lead times default to a smaller
            shelf (capacity 12, max_order 5, demand_rate 2) so the tabular model
            stays small; these size defaults are fixed here, so overriding only
            ``lead_time`` later keeps the sizes of this construction.
        **param_defaults: further fields of ``InventoryParams`` that become this
            env's defaults (validated here).
    """

    def __init__(self, lead_time: int = 0, **param_defaults: Any):
        self.lead_time = lead_time
        self._defaults = {
            **_SIZE_DEFAULTS[bool(lead_time)],
            "lead_time": lead_time,
            **param_defaults,
        }
        self.default_params()  # fail at construction on bad defaults
        self.description = "Inventory control, Poisson demand, lost sales, " + (
            "immediate delivery" if lead_time == 0 else f"order lead time {lead_time}"
        )

    @property
    def name(self) -> str:
        return "Inventory" if self.lead_time == 0 else "Inventory-LeadTime"

    def default_params(self, **overrides: Any) -> InventoryParams:
        if "demand_rate" in overrides and "max_demand" not in overrides:
            overrides = {**overrides, "max_demand": None}  # re-derive the sampler's support
        return apply_overrides(InventoryParams(**self._defaults), overrides)

    def reset(self, key, params):
        del key
        stock = _initial_stock(params)
        pipeline = jnp.zeros((params.lead_time,), jnp.int32)
        info = {k: jnp.zeros((), jnp.int32) for k in COUNT_KEYS}
        info["stock"] = stock
        info.update({k: jnp.zeros((), jnp.float32) for k in COST_KEYS})
        return InventoryState(stock, pipeline), restart(_observe(stock, pipeline), info)

    def step(self, key, state, action, params):
        # 1. Order, cut to the free room so the shelf never overflows.
        order = jnp.clip(jnp.asarray(action, jnp.int32), 0, params.max_order)
        room = params.capacity - state.stock - jnp.sum(state.pipeline)
        order = jnp.minimum(order, room)
        # 2.-3. Pay for it; the order due now arrives.
        if params.lead_time == 0:
            arrived, pipeline = order, state.pipeline
        else:
            arrived = state.pipeline[0]
            pipeline = jnp.concatenate([state.pipeline[1:], order[None]])
        available = state.stock + arrived
        # 4. Demand, sales, lost sales.
        demand = sample_demand(key, params)
        sales = jnp.minimum(available, demand)
        lost = demand - sales
        stock = available - sales
        # 5.-6. Profit.
        f32 = lambda x: x.astype(jnp.float32)
        revenue = params.price * f32(sales)
        order_cost = params.unit_cost * f32(order) + params.fixed_order_cost * f32(order > 0)
        holding_cost = params.holding_cost * f32(stock)
        lost_cost = params.lost_sales_penalty * f32(lost)
        reward = revenue - order_cost - holding_cost - lost_cost
        info = {
            "demand": demand,
            "sales": sales,
            "lost_sales": lost,
            "order": order,
            "arrived": arrived,
            "stock": stock,
            "revenue": f32(revenue),
            "order_cost": f32(order_cost),
            "holding_cost": f32(holding_cost),
            "lost_sales_cost": f32(lost_cost),
        }
        next_state = InventoryState(stock, pipeline)
        return next_state, transition(_observe(stock, pipeline), reward, False, info)

    def observation_space(self, params):
        high = [params.capacity] + [min(params.max_order, params.capacity)] * params.lead_time
        return Box(0.0, np.asarray(high, np.float32), (1 + params.lead_time,), jnp.float32)

    def action_space(self, params):
        return Discrete(params.max_order + 1)

    def tabular_model(self, params: InventoryParams) -> TabularModel:
        """The exact MDP; see ``tabular_model``."""
        return tabular_model(params)

    def state_index(self, state: InventoryState, params: InventoryParams) -> jax.Array:
        """Index of ``state`` in ``tabular_model(params)``; see ``state_index``."""
        return state_index(state, params)

    def observation_index(self, obs: jax.Array, params: InventoryParams) -> jax.Array:
        """int32 index in ``tabular_model(params)`` of the state observed as ``obs``
        ``(1 + lead_time,)`` (the observation is the state, so this is exact)."""
        stock = jnp.round(obs[0]).astype(jnp.int32)
        pipeline = jnp.round(obs[1:]).astype(jnp.int32)
        return state_index(InventoryState(stock, pipeline), params)

    def num_states(self, params: InventoryParams) -> int:
        """Number of states of ``tabular_model(params)``, counted without building it."""
        return num_tabular_states(params.capacity, params.max_order, params.lead_time)


# Tabular model ----------------------------------------------------------------


class TabularModel(NamedTuple):
    """The exact finite MDP of an ``Inventory`` env.

    Attributes:
        P: (S, A, S) float32, ``P[s, a, s']``; rows sum to 1.
        R: (S, A) float32, the exact expected reward (profit) of action ``a`` in ``s``.
        states: (S, 1 + lead_time) int32, row ``i`` is ``[stock, pipeline...]`` of
            state ``i`` (the inverse of ``state_index``), in lexicographic order.
        initial_state: int32 scalar, the index of the state ``reset`` returns.
    """

    P: jax.Array
    R: jax.Array
    states: jax.Array
    initial_state: jax.Array


def num_tabular_states(capacity: int, max_order: int, lead_time: int) -> int:
    """Number of states ``(stock, pipeline)`` with ``stock + sum(pipeline) <= capacity``
    and pipeline entries in ``0 .. max_order``, counted without enumerating them."""
    ways = np.zeros(capacity + 1, np.int64)  # ways[t]: pipelines with sum t
    ways[0] = 1
    for _ in range(lead_time):
        ways = np.convolve(ways, np.ones(min(max_order, capacity) + 1, np.int64))[: capacity + 1]
    return int(np.sum(ways * (capacity + 1 - np.arange(capacity + 1))))


def _check_tabular_size(capacity: int, max_order: int, lead_time: int) -> None:
    num_states = num_tabular_states(capacity, max_order, lead_time)
    num_actions = max_order + 1
    entries = num_states * num_actions * num_states
    codes = (capacity + 1) * (min(max_order, capacity) + 1) ** lead_time
    if num_states > MAX_TABULAR_STATES or max(entries, codes) > MAX_TABULAR_ENTRIES:
        raise ValueError(
            f"tabular_model: capacity={capacity}, max_order={max_order}, "
            f"lead_time={lead_time} give S={num_states:,} states and A={num_actions} "
            f"actions, so P would have S*A*S={entries:,} entries; the limits are "
            f"{MAX_TABULAR_STATES:,} states and {MAX_TABULAR_ENTRIES:,} entries"
        )


@functools.lru_cache(maxsize=32)
def _enumerate(capacity: int, max_order: int, lead_time: int) -> tuple[np.ndarray, np.ndarray]:
    """States ``(S, 1 + L)`` in lexicographic order and the lookup table from a state's
    code (``_codes``) to its index (-1 where no state). Raises if there are too many."""
    _check_tabular_size(capacity, max_order, lead_time)
    sizes = (capacity + 1,) + (min(max_order, capacity) + 1,) * lead_time
    grid = np.indices(sizes).reshape(len(sizes), -1).T  # lexicographic = code order
    valid = grid.sum(axis=1) <= capacity
    table = np.full(grid.shape[0], -1, np.int64)
    table[valid] = np.arange(int(valid.sum()))
    return grid[valid].astype(np.int32), table


def _codes(stock: Any, pipeline: Any, params: InventoryParams) -> Any:
    """Mixed-radix code ``stock * B^L + sum_i pipeline[..., i] * B^(L-1-i)``,
    ``B = min(max_order, capacity) + 1`` (pipeline entries never exceed it)."""
    base, lead = min(params.max_order, params.capacity) + 1, params.lead_time
    code = stock * base**lead
    for i in range(lead):
        code = code + pipeline[..., i] * base ** (lead - 1 - i)
    return code


def state_index(state: InventoryState, params: InventoryParams) -> jax.Array:
    """int32 index of ``state`` in ``tabular_model(params)`` (works under jit and vmap).

    Args:
        state: an ``InventoryState`` (stock scalar, pipeline (lead_time,)).
        params: the params the model was built with (only the static sizes matter).

    Returns:
        int32 scalar in ``0 .. S - 1``; ``tabular_model(params).states[i]`` inverts it.
    """
    _, table = _enumerate(params.capacity, params.max_order, params.lead_time)
    code = _codes(state.stock, state.pipeline, params)
    return jnp.asarray(table, jnp.int32)[code]


def _scalar(params: InventoryParams, name: str) -> float:
    value = concrete(getattr(params, name))
    if value is None or value.size != 1:
        raise ValueError(
            f"tabular_model needs concrete scalar params; {name}={getattr(params, name)!r} "
            "is traced or batched (call it outside jit/vmap, once per params)"
        )
    return float(value.reshape(()))


def _scalar_stock(params: InventoryParams) -> int:
    if params.initial_stock is None:
        return params.capacity // 2
    return int(_scalar(params, "initial_stock"))


def tabular_model(params: InventoryParams) -> TabularModel:
    """The exact transition tensor and expected rewards of the inventory MDP.

    With ``y = stock + arrived`` units available after the delivery, the next stock
    is ``(y - D)^+``: ``P(next = j) = P(D = y - j)`` for ``1 <= j <= y`` and
    ``P(next = 0) = P(D >= y)``. The expected reward uses the exact Poisson law:
    with ``L(y) = E[(D - y)^+] = rate * P(D >= y) - y * P(D > y)``,
    ``E[sales] = rate - L(y)`` and ``E[end stock] = y - rate + L(y)``.

    Args:
        params: concrete, unbatched ``InventoryParams``.

    Returns:
        ``TabularModel`` with ``S`` states (every ``(stock, pipeline)`` with
        ``stock + sum(pipeline) <= capacity`` and pipeline entries ``<= max_order``)
        and ``A = max_order + 1`` actions.

    Raises:
        ValueError: the model would be too large (``MAX_TABULAR_STATES`` states or
            ``MAX_TABULAR_ENTRIES`` entries in P), or params are traced/batched.
    """
    cap, max_order, lead = params.capacity, params.max_order, params.lead_time
    states, table = _enumerate(cap, max_order, lead)
    num_states, num_actions = states.shape[0], max_order + 1
    rate = _scalar(params, "demand_rate")

    # Demand law on 0 .. cap: ge[y] = P(D >= y), L[y] = E[(D - y)^+] for y = 0 .. cap.
    pmf = _poisson_pmf(rate, cap + 2)
    ge = np.concatenate([[1.0], 1.0 - np.cumsum(pmf)])[: cap + 2]
    y_grid = np.arange(cap + 1)
    expected_lost = rate * ge[: cap + 1] - y_grid * ge[1 : cap + 2]
    # next_stock_prob[y, j] = P((y - D)^+ = j).
    diff = y_grid[:, None] - y_grid[None, :]
    next_stock_prob = np.where(diff >= 0, pmf[np.clip(diff, 0, cap + 1)], 0.0)
    next_stock_prob[:, 0] = ge[: cap + 1]

    stock, pipeline = states[:, 0:1], states[:, 1:]  # (S, 1), (S, L)
    order = np.minimum(
        np.arange(num_actions)[None, :], cap - stock - pipeline.sum(1, keepdims=True)
    )
    if lead == 0:
        arrived = order
        next_pipe_code = np.zeros_like(order)
    else:
        arrived = np.broadcast_to(pipeline[:, :1], order.shape)
        shifted = np.concatenate(
            [np.broadcast_to(pipeline[:, None, 1:], order.shape + (lead - 1,)), order[..., None]],
            axis=-1,
        )
        next_pipe_code = _codes(0, shifted, params)
    available = stock + arrived  # (S, A)

    # Next state of stock j: code j * B^L + next_pipe_code; valid only where j <= y.
    j = y_grid[None, None, :]
    stock_code = _codes(j, np.zeros((1, 1, lead), np.int64), params)
    next_index = table[stock_code + next_pipe_code[..., None]]
    reachable = j <= available[..., None]
    s_idx, a_idx, j_idx = np.nonzero(reachable)
    P = np.zeros((num_states, num_actions, num_states), np.float64)
    P[s_idx, a_idx, next_index[s_idx, a_idx, j_idx]] = next_stock_prob[
        available[s_idx, a_idx], j_idx
    ]

    lost = expected_lost[available]
    price, unit_cost, holding_cost, penalty, fixed_cost = (
        _scalar(params, name)
        for name in ("price", "unit_cost", "holding_cost", "lost_sales_penalty", "fixed_order_cost")
    )
    R = (
        price * (rate - lost)
        - unit_cost * order
        - fixed_cost * (order > 0)
        - holding_cost * (available - rate + lost)
        - penalty * lost
    )
    initial = _codes(_scalar_stock(params), np.zeros((lead,), np.int64), params)
    return TabularModel(
        P=jnp.asarray(P, jnp.float32),
        R=jnp.asarray(R, jnp.float32),
        states=jnp.asarray(states),
        initial_state=jnp.asarray(table[initial], jnp.int32),
    )


# Plotting -----------------------------------------------------------------------


def plot_episode(trajectory_infos: dict[str, Any], path: Any = None):
    """Plot stock, orders, demand and profit over one episode.

    Args:
        trajectory_infos: the ``info`` dicts of one episode's steps stacked over time
            (e.g. from ``lax.scan``): each of ``stock``, ``order``, ``arrived``,
            ``demand``, ``sales``, ``lost_sales`` and the cost keys of shape (T,).
        path: if given, the figure is saved there as a PNG.

    Returns:
        The matplotlib ``Figure``.
    """
    # A bare Figure renders with Agg and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    data = {k: np.asarray(trajectory_infos[k]) for k in COUNT_KEYS + COST_KEYS}
    if any(v.ndim != 1 for v in data.values()):
        shapes = {k: v.shape for k, v in data.items()}
        raise ValueError(f"plot_episode needs 1-D (T,) arrays for one episode, got {shapes}")
    t = np.arange(1, data["stock"].shape[0] + 1)
    profit = data["revenue"] - data["order_cost"] - data["holding_cost"] - data["lost_sales_cost"]

    fig = Figure(figsize=(9, 8))
    ax_stock, ax_demand, ax_profit = fig.subplots(3, 1, sharex=True)
    ax_stock.step(t, data["stock"], where="mid", label="end-of-period stock")
    ax_stock.bar(t, data["order"], alpha=0.4, label="order placed")
    arrived = np.where(data["arrived"] > 0, data["arrived"], np.nan)  # mark deliveries only
    ax_stock.plot(t, arrived, "k.", label="arrived")
    ax_stock.set_ylabel("units")
    ax_stock.legend(loc="upper right", fontsize="small")
    ax_demand.bar(t, data["sales"], label="sales")
    ax_demand.bar(t, data["lost_sales"], bottom=data["sales"], color="tab:red", label="lost sales")
    ax_demand.set_ylabel("demand")
    ax_demand.legend(loc="upper right", fontsize="small")
    ax_profit.bar(t, profit, color=np.where(profit >= 0, "tab:green", "tab:red"))
    ax_profit.set_ylabel("profit per period")
    ax_cum = ax_profit.twinx()
    ax_cum.plot(t, np.cumsum(profit), "k-", label="cumulative")
    ax_cum.set_ylabel("cumulative profit")
    ax_profit.set_xlabel("period")
    fig.suptitle(f"Inventory episode: total profit {profit.sum():.1f}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig
