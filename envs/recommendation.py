"""A recommender-system environment where clicks now cost users later.

The model (one user per episode):

- The user has latent interests ``u``, a unit vector in R^d drawn uniformly at
  reset, and a satisfaction level ``s`` in [0, 1], starting at
  ``clip(initial_satisfaction + initial_satisfaction_std * N(0, 1), 0, 1)``.
- The catalogue has K items (fixed in params): unit feature vectors ``v_k``,
  a quality ``q_k`` in [0, 1] and a clickbait strength ``c_k`` in [0, 1]
  (items with ``c_k > 0.5`` are reported as clickbait). The default catalogue
  (``default_catalogue``) is built without randomness in JAX, from a fixed
  NumPy seed: 10 items in R^4, items 0-6 good (quality 0.7-0.95, not
  sensational), items 7-9 clickbait (quality 0.1, strength 1).
- Each step the agent shows one item ``a``. With match ``m = u . v_a`` the user
  clicks with probability::

      p = clip(click_base + click_match * m + click_satisfaction * s + click_appeal * c_a, 0, 1)

  and the satisfaction moves to::

      s' = clip(s + satisfaction_rate * (q_a - satisfaction_neutral + satisfaction_match * m)
                + satisfaction_noise * U(-1, 1), 0, 1)

  so clickbait draws clicks now and erodes satisfaction, while good items that
  match the user's interests draw fewer clicks now and raise satisfaction.
- Reward: 1 per click. The user leaves (``terminated``) on the step where
  ``s' < leave_threshold``. ``envs.make`` adds a 200-step time limit.

A policy that always shows the item with the highest immediate click
probability (``myopic_policy``) burns through users in about ten steps; one that
always shows the item that raises satisfaction most (``keeper_policy``) keeps
them for the whole episode and earns many times more clicks per user (with the
defaults about 11 vs 110 clicks per user over a 200-step limit; see
``tests/test_recommendation.py``). Neither is optimal: once a user is happy, an
occasional clickbait item earns extra clicks at a satisfaction cost the good
items repay (showing clickbait only while ``s > 0.9`` earns about 160), which is
what a long-horizon agent should discover.

Observation: float32 ``[u (d), s, last_click]`` of shape (d + 2,) in the box
``[-1, 1]^d x [0, 1] x [0, 1]`` (interests and satisfaction are observable; the
catalogue is fixed, so a policy can learn it). ``info`` after every step (and,
with the same structure, after reset): ``click`` (float32, 0/1),
``satisfaction`` (float32, after the step; the initial level after reset),
``clickbait`` (bool, the shown item is clickbait) and ``click_probability``
(float32, ``p`` of the shown item; 0 after reset). Actions outside ``0 .. K - 1``
are clipped into range.

Inspiration: RecSim (E. Ie et al., "RecSim: A Configurable Simulation Platform
for Recommender Systems", arXiv:1909.04847, 2019), its interest-evolution and
long-term-satisfaction ("chocolate vs kale") environments, and the case for
optimising long-term value rather than clicks in E. Ie et al., "SlateQ: A
Tractable Decomposition for Reinforcement Learning with Recommendation Sets",
IJCAI 2019. Deviations: one item per step instead of a slate, a scalar
satisfaction with a leaving threshold instead of RecSim's time budget, and no
user choice model beyond the click probability.

Why hand-written: RecSim is a Gym environment in NumPy that simulates one user
at a time in Python, so it cannot be ``jit``-compiled or ``vmap``-ed with the
agent; this is a small pure-JAX model with the same lesson that runs thousands
of users in one compiled rollout.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs._validation import apply_overrides, check_range, concrete
from envs.core import Environment, restart, transition
from envs.spaces import Box, Discrete

_CATALOGUE_SEED = 2019


def default_catalogue(
    num_items: int = 10, interest_dim: int = 4
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The deterministic default items (fixed NumPy seed; no JAX randomness).

    The last ``max(1, round(0.3 * num_items))`` items are clickbait (quality 0.1,
    strength 1); the others are good, with qualities evenly spaced in [0.7, 0.95].

    Returns:
        ``(features (K, d) unit rows, quality (K,), clickbait (K,))``, float32.
    """
    if int(num_items) < 2 or int(interest_dim) < 1:
        raise ValueError(
            f"RecommendationParams.num_items={num_items}, interest_dim={interest_dim} are not "
            f"allowed; num_items must be >= 2 and interest_dim >= 1"
        )
    rng = np.random.default_rng(_CATALOGUE_SEED)
    features = rng.normal(size=(num_items, interest_dim))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    num_bait = max(1, round(0.3 * num_items))
    num_good = num_items - num_bait
    quality = np.concatenate([np.linspace(0.7, 0.95, num_good), np.full(num_bait, 0.1)])
    clickbait = np.concatenate([np.zeros(num_good), np.ones(num_bait)])
    return tuple(jnp.asarray(x, jnp.float32) for x in (features, quality, clickbait))


def _default_features() -> jax.Array:
    return default_catalogue()[0]


def _default_quality() -> jax.Array:
    return default_catalogue()[1]


def _default_clickbait() -> jax.Array:
    return default_catalogue()[2]


_UNIT_FIELDS = (
    "click_base",
    "click_match",
    "click_satisfaction",
    "click_appeal",
    "satisfaction_rate",
    "satisfaction_neutral",
    "satisfaction_match",
    "initial_satisfaction",
    "leave_threshold",
)


@struct.dataclass
class RecommendationParams:
    num_items: int = struct.field(pytree_node=False, default=10)
    """Number of items K, the number of actions (static, >= 2)."""
    interest_dim: int = struct.field(pytree_node=False, default=4)
    """Dimension d of user interests and item features (static, >= 1)."""
    item_features: jax.Array = struct.field(default_factory=_default_features)
    """(K, d) item feature vectors, unit rows (the match u . v is clipped to [-1, 1])."""
    item_quality: jax.Array = struct.field(default_factory=_default_quality)
    """(K,) item quality in [0, 1]; above ``satisfaction_neutral`` it raises satisfaction."""
    item_clickbait: jax.Array = struct.field(default_factory=_default_clickbait)
    """(K,) clickbait strength in [0, 1]; adds ``click_appeal * c`` to the click probability."""
    click_base: float = 0.1
    """Click probability of an unmatched, unsensational item to a user at s = 0 ([0, 1])."""
    click_match: float = 0.3
    """Click probability added per unit of interest match u . v ([0, 1])."""
    click_satisfaction: float = 0.3
    """Click probability added per unit of satisfaction: happy users click more ([0, 1])."""
    click_appeal: float = 0.5
    """Click probability added per unit of clickbait strength ([0, 1])."""
    satisfaction_rate: float = 0.1
    """Scale of the per-step satisfaction change ([0, 1])."""
    satisfaction_neutral: float = 0.5
    """Quality that leaves satisfaction unchanged at zero match ([0, 1])."""
    satisfaction_match: float = 0.25
    """Weight of the interest match in the satisfaction change ([0, 1])."""
    satisfaction_noise: float = 0.02
    """Half-width of the uniform noise added to satisfaction each step (>= 0)."""
    initial_satisfaction: float = 0.5
    """Mean satisfaction of a new user ([0, 1])."""
    initial_satisfaction_std: float = 0.1
    """Standard deviation of a new user's satisfaction (>= 0; clipped to [0, 1])."""
    leave_threshold: float = 0.2
    """The user leaves (terminated) when satisfaction falls below this ([0, 1])."""

    def __post_init__(self):
        owner = type(self).__name__
        if int(self.num_items) < 2:
            raise ValueError(f"{owner}.num_items={self.num_items} is not allowed; it must be >= 2")
        if int(self.interest_dim) < 1:
            raise ValueError(
                f"{owner}.interest_dim={self.interest_dim} is not allowed; it must be >= 1"
            )
        k, d = self.num_items, self.interest_dim
        for name, shape in (
            ("item_features", (k, d)),
            ("item_quality", (k,)),
            ("item_clickbait", (k,)),
        ):
            # Leading batch dimensions are allowed, so batched params can be vmapped;
            # plain ints are in_axes placeholders (``jax.tree.map(lambda _: 0, params)``).
            value = getattr(self, name)
            array = None if isinstance(value, int) else concrete(value)
            if array is not None and array.shape[array.ndim - len(shape) :] != shape:
                raise ValueError(
                    f"{owner}.{name} has shape {array.shape}, which is not allowed; it must "
                    f"have shape {shape}. Use Recommendation().default_params(num_items=..., "
                    f"interest_dim=...) to get a catalogue of another size."
                )
        check_range(owner, "item_features", self.item_features, -np.inf, np.inf)  # no NaN
        check_range(owner, "item_quality", self.item_quality, 0.0, 1.0)
        check_range(owner, "item_clickbait", self.item_clickbait, 0.0, 1.0)
        for name in _UNIT_FIELDS:
            check_range(owner, name, getattr(self, name), 0.0, 1.0)
        check_range(owner, "satisfaction_noise", self.satisfaction_noise, 0.0)
        check_range(owner, "initial_satisfaction_std", self.initial_satisfaction_std, 0.0)


@struct.dataclass
class RecommendationState:
    interests: jax.Array
    """(d,) float32 unit vector u."""
    satisfaction: jax.Array
    """() float32 in [0, 1]."""
    last_click: jax.Array
    """() float32, 1 if the user clicked the last item shown."""


def _matches(interests: jax.Array, params: RecommendationParams) -> jax.Array:
    return jnp.clip(params.item_features @ interests, -1.0, 1.0)


def click_probabilities(
    interests: jax.Array, satisfaction: jax.Array, params: RecommendationParams
) -> jax.Array:
    """Click probability of every item for a user.

    Args:
        interests: (d,) the user's interest vector.
        satisfaction: () the user's satisfaction.
        params: the catalogue and click model.

    Returns:
        (K,) float32 in [0, 1].
    """
    p = (
        params.click_base
        + params.click_match * _matches(interests, params)
        + params.click_satisfaction * satisfaction
        + params.click_appeal * params.item_clickbait
    )
    return jnp.clip(p, 0.0, 1.0)


def satisfaction_drifts(interests: jax.Array, params: RecommendationParams) -> jax.Array:
    """(K,) expected satisfaction change (before clipping) from showing each item."""
    return params.satisfaction_rate * (
        params.item_quality
        - params.satisfaction_neutral
        + params.satisfaction_match * _matches(interests, params)
    )


def _split_obs(obs: jax.Array, params: RecommendationParams) -> tuple[jax.Array, jax.Array]:
    return obs[: params.interest_dim], obs[params.interest_dim]


def myopic_policy(obs: jax.Array, params: RecommendationParams) -> jax.Array:
    """Baseline: the item with the highest immediate click probability.

    Args:
        obs: (d + 2,) one user's observation (``vmap`` for a batch).
        params: the env params (the catalogue is known to the policy).

    Returns:
        int32 scalar item index.
    """
    interests, satisfaction = _split_obs(obs, params)
    return jnp.argmax(click_probabilities(interests, satisfaction, params)).astype(jnp.int32)


def keeper_policy(obs: jax.Array, params: RecommendationParams) -> jax.Array:
    """Baseline: the item that raises satisfaction most, i.e. the best-matching good item.

    Args:
        obs: (d + 2,) one user's observation (``vmap`` for a batch).
        params: the env params (the catalogue is known to the policy).

    Returns:
        int32 scalar item index.
    """
    interests, _ = _split_obs(obs, params)
    return jnp.argmax(satisfaction_drifts(interests, params)).astype(jnp.int32)


def _obs(state: RecommendationState) -> jax.Array:
    # Normalising can put a component a rounding error above 1; the box is exact.
    interests = jnp.clip(state.interests, -1.0, 1.0)
    return jnp.concatenate([interests, state.satisfaction[None], state.last_click[None]])


class Recommendation(Environment[RecommendationState, RecommendationParams]):
    """One user per episode, one recommended item per step; see the module docstring."""

    description = "Recommender with clickbait: clicks now vs. keeping the user (RecSim-like)"

    def default_params(self, **overrides) -> RecommendationParams:
        """Default params; overriding ``num_items``/``interest_dim`` rebuilds the catalogue."""
        base = RecommendationParams()
        if "num_items" in overrides or "interest_dim" in overrides:
            shape = (
                overrides.get("num_items", base.num_items),
                overrides.get("interest_dim", base.interest_dim),
            )
            features, quality, clickbait = default_catalogue(*shape)
            overrides = {
                "item_features": features,
                "item_quality": quality,
                "item_clickbait": clickbait,
                **overrides,
            }
        return apply_overrides(base, overrides)

    def reset(self, key, params):
        normals = jax.random.normal(key, (params.interest_dim + 1,), jnp.float32)
        direction = normals[: params.interest_dim]
        interests = direction / jnp.maximum(jnp.linalg.norm(direction), 1e-6)
        satisfaction = jnp.clip(
            params.initial_satisfaction + params.initial_satisfaction_std * normals[-1], 0.0, 1.0
        )
        state = RecommendationState(interests, satisfaction, jnp.zeros((), jnp.float32))
        info = {
            "click": jnp.zeros((), jnp.float32),
            "satisfaction": satisfaction,
            "clickbait": jnp.zeros((), jnp.bool_),
            "click_probability": jnp.zeros((), jnp.float32),
        }
        return state, restart(_obs(state), info)

    def step(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, params.num_items - 1)
        uniforms = jax.random.uniform(key, (2,), jnp.float32)
        p_click = click_probabilities(state.interests, state.satisfaction, params)[action]
        click = (uniforms[0] < p_click).astype(jnp.float32)
        drift = satisfaction_drifts(state.interests, params)[action]
        noise = params.satisfaction_noise * (2.0 * uniforms[1] - 1.0)
        satisfaction = jnp.clip(state.satisfaction + drift + noise, 0.0, 1.0)
        terminated = satisfaction < params.leave_threshold
        state = RecommendationState(state.interests, satisfaction, click)
        info = {
            "click": click,
            "satisfaction": satisfaction,
            "clickbait": params.item_clickbait[action] > 0.5,
            "click_probability": p_click,
        }
        return state, transition(_obs(state), click, terminated, info)

    def observation_space(self, params):
        d = params.interest_dim
        low = np.concatenate([-np.ones(d), np.zeros(2)])
        return Box(low, np.ones(d + 2), (d + 2,), jnp.float32)

    def action_space(self, params):
        return Discrete(params.num_items)


def plot_user(
    trajectory_infos: dict[str, Any],
    path: str | os.PathLike | None = None,
    *,
    leave_threshold: float | None = None,
    title: str | None = None,
):
    """Plot one user's episode: satisfaction and clicks over time.

    Args:
        trajectory_infos: the ``info`` dicts of one episode's steps, stacked over
            time (each entry of shape (T,)), e.g. from a ``lax.scan`` rollout of
            the raw or ``TimeLimit``-wrapped env; slice off steps after the end.
        path: if given, save a PNG there.
        leave_threshold: draw the leaving threshold (e.g. ``params.leave_threshold``).
        title: figure title.

    Returns:
        The ``matplotlib.figure.Figure`` (drawn with the Agg canvas, so it does
        not touch pyplot's global state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    infos = {k: np.asarray(trajectory_infos[k]) for k in ("satisfaction", "click", "clickbait")}
    for name, values in infos.items():
        if values.ndim != 1:
            raise ValueError(
                f"plot_user: info[{name!r}] has shape {values.shape}; it must be (T,), one "
                f"episode of one user (index a batch first)"
            )
    steps = np.arange(1, len(infos["satisfaction"]) + 1)
    clicks = infos["click"] > 0.5
    bait = infos["clickbait"].astype(bool)

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.plot(steps, infos["satisfaction"], color="tab:blue", label="satisfaction")
    if leave_threshold is not None:
        top.axhline(leave_threshold, color="tab:gray", ls="--", label="leaves below")
    for mask, color, label in ((~bait, "tab:green", "good item"), (bait, "tab:red", "clickbait")):
        top.scatter(steps[mask], infos["satisfaction"][mask], s=8, color=color, label=label)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("satisfaction")
    top.legend(loc="lower left", fontsize="small")
    bottom.plot(steps, np.cumsum(clicks), color="tab:purple")
    bottom.scatter(steps[clicks], np.cumsum(clicks)[clicks], s=6, color="tab:purple")
    bottom.set_ylabel("clicks (cumulative)")
    bottom.set_xlabel("step")
    fig.suptitle(title or f"one user: {int(clicks.sum())} clicks in {len(steps)} steps")
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig
