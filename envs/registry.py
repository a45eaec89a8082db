"""Environment registry: ``make(name)`` and ``registered()``.

Built-in environments are listed in ``_BUILTINS`` with the module that defines
them, imported lazily so ``import envs`` stays fast. ``gymnax:<id>`` and
``brax:<name>`` resolve to the adapters, which import gymnax or Brax only when
first used.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.core import Environment
from envs.wrappers import AutoReset, EpisodeStatistics, TimeLimit


@dataclass(frozen=True)
class Spec:
    """How to build one registered environment."""

    module: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    """Default time limit applied by ``make``; None where the env truncates itself."""


_BUILTINS: dict[str, Spec] = {
    "GridWorld-Empty-8x8": Spec("envs.gridworld", "GridWorld", {"layout": "empty-8x8"}, 100),
    "GridWorld-FourRooms": Spec("envs.gridworld", "GridWorld", {"layout": "four-rooms"}, 200),
    "GridWorld-Maze": Spec("envs.gridworld", "RandomMaze", {}, 200),
    "Inventory": Spec("envs.inventory", "Inventory", {}, 100),
    "Inventory-LeadTime": Spec("envs.inventory", "Inventory", {"lead_time": 2}, 100),
    "Bandit-Bernoulli": Spec("envs.bandits", "BernoulliBandit", {}, 1000),
    "Bandit-Gaussian": Spec("envs.bandits", "GaussianBandit", {}, 1000),
    "ContextualBandit-Linear": Spec("envs.bandits", "ContextualBandit", {}, 1000),
    "Recommendation": Spec("envs.recommendation", "Recommendation", {}, 200),
    "Probe-1": Spec("envs.probes", "Probe", {"index": 1}, 100),
    "Probe-2": Spec("envs.probes", "Probe", {"index": 2}, 100),
    "Probe-3": Spec("envs.probes", "Probe", {"index": 3}, 100),
    "Probe-4": Spec("envs.probes", "Probe", {"index": 4}, 100),
    "Probe-5": Spec("envs.probes", "Probe", {"index": 5}, 100),
    **{
        f"ContinuousProbe-{i}": Spec("envs.probes", "Probe", {"index": i, "continuous": True}, 100)
        for i in range(1, 6)
    },
}

_ADAPTERS = {
    "gymnax": ("envs.adapters.gymnax", "GymnaxEnv"),
    "brax": ("envs.adapters.brax", "BraxEnv"),
}
_BRAX_MAX_EPISODE_STEPS = 1000


def builtin_names() -> list[str]:
    """The built-in environments (no adapters)."""
    return list(_BUILTINS)


def registered(adapters: bool = True) -> list[str]:
    """Every name ``make`` accepts: built-ins, then ``gymnax:*`` and ``brax:*``.

    Listing the adapters imports gymnax and Brax; pass ``adapters=False`` to skip them.
    """
    names = builtin_names()
    if adapters:
        import brax.envs

        from envs.adapters.gymnax import GymnaxEnv

        names += [f"gymnax:{n}" for n in GymnaxEnv.available()]
        names += [f"brax:{n}" for n in sorted(brax.envs._envs)]
    return names


def _unknown(name: str) -> ValueError:
    candidates = registered(adapters=":" in name)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.4)
    hint = f" Closest registered names: {', '.join(close)}." if close else ""
    return ValueError(
        f"Unknown environment {name!r}.{hint} See envs.registered() for the full list."
    )


def make_raw(name: str) -> tuple[Environment, int | None]:
    """The bare environment for ``name`` and its default time limit (None: self-truncating)."""
    if ":" in name:
        prefix, _, env_id = name.partition(":")
        if prefix not in _ADAPTERS:
            raise _unknown(name)
        module, factory = _ADAPTERS[prefix]
        adapter = getattr(importlib.import_module(module), factory)
        if env_id not in adapter.available():
            raise _unknown(name)
        limit = _BRAX_MAX_EPISODE_STEPS if prefix == "brax" else None
        return adapter(env_id), limit
    if name not in _BUILTINS:
        raise _unknown(name)
    spec = _BUILTINS[name]
    env_cls = getattr(importlib.import_module(spec.module), spec.factory)
    return env_cls(**spec.kwargs), spec.max_episode_steps


def make(
    name: str,
    *,
    max_episode_steps: int | None = None,
    autoreset: bool = True,
    raw: bool = False,
    **param_overrides: Any,
) -> tuple[Environment, Any]:
    """Build a registered environment and its validated params.

    Args:
        name: a name from ``registered()``, e.g. ``"GridWorld-FourRooms"``,
            ``"gymnax:CartPole-v1"`` or ``"brax:ant"``.
        max_episode_steps: override the default time limit. For gymnax
            environments, which truncate themselves, this sets their
            ``max_steps_in_episode`` param instead.
        autoreset: add ``AutoReset`` (training); False gives
            ``EpisodeStatistics(TimeLimit(env))``, for evaluation loops that stop
            at the first episode end, and for ``to_gymnasium``.
        raw: return the bare environment, with no time limit and no wrappers.
        **param_overrides: fields of the env's params, validated here.

    Returns:
        ``(env, params)``; by default ``env`` is
        ``EpisodeStatistics(AutoReset(TimeLimit(raw_env)))``.
    """
    env, limit = make_raw(name)
    if max_episode_steps is not None:
        whole = isinstance(max_episode_steps, int | np.integer) or (
            isinstance(max_episode_steps, float) and float(max_episode_steps).is_integer()
        )
        if isinstance(max_episode_steps, bool) or not whole or int(max_episode_steps) < 1:
            raise ValueError(
                f"max_episode_steps={max_episode_steps!r} is not allowed; it must be a whole "
                "number >= 1"
            )
        if limit is None and name.startswith("gymnax:"):
            param_overrides = {**param_overrides, "max_steps_in_episode": int(max_episode_steps)}
        else:
            limit = int(max_episode_steps)
    params = env.default_params(**param_overrides)
    if raw:
        return env, params
    if limit is not None:
        env = TimeLimit(env, limit)
    if autoreset:
        env = AutoReset(env)
    return EpisodeStatistics(env), params


def describe(name: str) -> str:
    """One-line description of a registered environment."""
    env, _ = make_raw(name)
    return env.description
