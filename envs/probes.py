"""The five probe environments for debugging agents (Andy Jones, "Debugging RL,
without the agonizing pain", 2021), each isolating one piece of an agent.

Observations are float32 vectors of shape (1,). Each probe comes with discrete
actions (``Probe-N``) and with one continuous action in [-1, 1]
(``ContinuousProbe-N``, for SAC, TD3 and Gaussian policies); in probes 1-3 the
action is ignored, in 4 and 5 the continuous reward is a parabola with its peak
inside the bounds, so a policy stuck at a bound fails.

=========  ========================================  ==========================================
name       dynamics                                  what a correct agent learns
=========  ========================================  ==========================================
Probe-1    one action, obs 0, reward +1 every step,  V(s) = 1 / (1 - gamma): tests value
           never terminates (infinite horizon)       learning and bootstrapping through
                                                     truncation (a time limit of 8 with
                                                     truncation treated as termination gives ~8)
Probe-2    one action, obs +-1 at random, one step,  V(obs) = obs: tests that the value
           reward = obs                              network uses the observation
Probe-3    one action, two steps: obs 0 then 1,      V(0) = gamma, V(1) = 1: tests discounting
           reward +1 at the end
Probe-4    two actions, obs 0, one step,             pi(a=1) -> 1, V = 1: tests the policy
           reward +1 for action 1, -1 for action 0   gradient / greedy action selection
Probe-5    two actions, obs +-1 at random, one step, pi(a=1 | +1) -> 1, pi(a=0 | -1) -> 1,
           reward +1 if the action matches the obs   V = 1: tests state-conditioned policies
           sign (action 1 for +1, 0 for -1), else -1
=========  ========================================  ==========================================

The continuous Probe-4 pays ``1 - 4 (a - 0.5)^2`` (best action 0.5, V = 1) and
Probe-5 pays ``1 - 4 (a - obs / 2)^2`` (best action +-0.5, the obs sign; V = 1).

Deviation from the original: Probe-1 is infinite-horizon rather than one step
long, so the same env also tests truncation handling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from envs._validation import apply_overrides
from envs.core import Environment, restart, transition
from envs.spaces import Box, Discrete

DESCRIPTIONS = {
    1: "Probe: constant reward, infinite horizon; V = 1/(1-gamma)",
    2: "Probe: observation-dependent reward, one step; V(obs) = obs",
    3: "Probe: reward after two steps; V(s0) = gamma",
    4: "Probe: action-dependent reward, one step; best action 1",
    5: "Probe: action-and-observation-dependent reward; match the obs sign",
}


@struct.dataclass
class ProbeState:
    obs: jax.Array
    time: jax.Array


@struct.dataclass
class ProbeParams:
    """Probes have nothing to tune; the empty params keep the API uniform."""


class Probe(Environment[ProbeState, ProbeParams]):
    """Probe environment number ``index`` (1-5), with discrete actions or one
    ``continuous`` action in [-1, 1]; see the module docstring."""

    def __init__(self, index: int, continuous: bool = False):
        if index not in DESCRIPTIONS:
            raise ValueError(
                f"Probe: index={index} is not allowed; it must be one of 1, 2, 3, 4, 5"
            )
        self.index = index
        self.continuous = bool(continuous)
        self.description = DESCRIPTIONS[index] + (" (continuous action)" if continuous else "")

    @property
    def name(self) -> str:
        return f"{'Continuous' if self.continuous else ''}Probe-{self.index}"

    def default_params(self, **overrides) -> ProbeParams:
        return apply_overrides(ProbeParams(), overrides)

    def _first_obs(self, key: jax.Array) -> jax.Array:
        if self.index in (2, 5):
            sign = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
            return jnp.full((1,), sign, jnp.float32)
        return jnp.zeros((1,), jnp.float32)

    def reset(self, key, params):
        obs = self._first_obs(key)
        return ProbeState(obs, jnp.zeros((), jnp.int32)), restart(obs)

    def step(self, key, state, action, params):
        del key, params
        obs_value = state.obs[0]
        time = state.time + 1
        if self.index == 1:
            reward, terminated, next_obs = 1.0, False, state.obs
        elif self.index == 2:
            reward, terminated, next_obs = obs_value, True, state.obs
        elif self.index == 3:
            terminated = time >= 2
            reward = jnp.where(terminated, 1.0, 0.0)
            next_obs = jnp.ones((1,), jnp.float32)
        elif self.continuous:
            a = jnp.clip(jnp.asarray(action, jnp.float32)[0], -1.0, 1.0)
            target = 0.5 if self.index == 4 else 0.5 * obs_value
            reward, terminated, next_obs = 1.0 - 4.0 * jnp.square(a - target), True, state.obs
        elif self.index == 4:
            action = jnp.clip(jnp.asarray(action, jnp.int32), 0, 1)
            reward, terminated, next_obs = jnp.where(action == 1, 1.0, -1.0), True, state.obs
        else:
            action = jnp.clip(jnp.asarray(action, jnp.int32), 0, 1)
            matches = action == (obs_value > 0).astype(jnp.int32)
            reward, terminated, next_obs = jnp.where(matches, 1.0, -1.0), True, state.obs
        return ProbeState(next_obs, time), transition(next_obs, reward, terminated)

    def observation_space(self, params):
        low = -1.0 if self.index in (2, 5) else 0.0
        return Box(low, 1.0, (1,), jnp.float32)

    def action_space(self, params):
        if self.continuous:
            return Box(-1.0, 1.0, (1,), jnp.float32)
        return Discrete(2 if self.index in (4, 5) else 1)
