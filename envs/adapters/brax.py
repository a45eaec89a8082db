"""Every Brax environment (Freeman et al., 2021) through the ``envs`` API.

``BraxEnv("ant")`` is what ``envs.make("brax:ant")`` builds; the registry adds a
1000-step ``TimeLimit`` (Brax's usual episode length). The physics backend is a
param, ``BraxParams.backend`` (static: each backend compiles separately); the
adapter builds one Brax environment per backend, lazily, and caches it.

How the flags map:

- ``terminated`` is Brax's ``done`` (a float 0/1 that Brax environments set on
  natural termination only, e.g. a hopper falling);
- ``truncated`` is always False here: our ``TimeLimit`` truncates.

Deviations from ``brax.envs.create``: no Brax wrappers are applied, so there is
no Brax ``EpisodeWrapper`` (our ``TimeLimit`` instead) and no Brax
``AutoResetWrapper``, which replays the first state it cached at reset; our
``envs.wrappers.AutoReset`` draws a fresh initial state from the step key.

Caveats:

- The state is Brax's own ``State`` pytree; Brax's ``metrics`` and ``info``
  stay in it (``state.metrics``), while the ``TimeStep.info`` is always ``{}``.
  The state's numeric leaves are made strongly typed, because Brax mixes Python
  floats into ``reward``/``done``/``metrics`` after a step, which would change
  the pytree's types between reset and step.
- Brax broadcasts ranks implicitly, so its calls run under
  ``jax.numpy_rank_promotion("allow")`` whatever the caller's setting.
- The default backend is the one the Brax class defaults to ("generalized");
  "spring" compiles about 3x faster (``brax:inverted_pendulum``: ~5 s against
  ~16 s on two CPU cores), which suits tests and smoke runs.
- Brax accepts typed keys (``jax.random.key``), so keys are passed as they are.
- Observations are float32 ``Box(-inf, inf, (observation_size,))``; actions are
  float32 ``Box(-1, 1, (action_size,))`` (Brax scales them to the actuators).
- ``brax:swimmer`` resets but fails to step with JAX >= 0.10 (``brax.fluid``
  calls ``jnp.clip`` with the removed ``a_min`` argument), and supports only
  the "generalized" backend; ``brax:fast`` is Brax's unit-test env and ignores
  the backend.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from envs._validation import apply_overrides
from envs.core import Environment, TimeStep, restart, transition
from envs.spaces import Box, Space

BACKENDS = ("generalized", "positional", "spring", "mjx")
"""Brax's physics pipelines. "spring" compiles fastest, "generalized" is the most accurate."""


@struct.dataclass
class BraxParams:
    """Static physics settings; Brax environments have no traced params."""

    backend: str = struct.field(pytree_node=False, default="generalized")
    """Physics pipeline, one of ``BACKENDS``."""

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(
                f"BraxParams.backend={self.backend!r} is not allowed; "
                f"it must be one of {', '.join(BACKENDS)}"
            )


def _brax_numpy():
    """Brax's physics broadcasts ranks implicitly; allow it even where callers
    (e.g. our tests) set ``jax_numpy_rank_promotion="raise"``."""
    return jax.numpy_rank_promotion("allow")


def _strong(tree: Any) -> Any:
    """``tree`` with Python numbers and weakly typed arrays made strongly typed."""

    def leaf(x: Any) -> Any:
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            return x
        x = jnp.asarray(x)
        return jax.lax.convert_element_type(x, x.dtype)

    return jax.tree.map(leaf, tree)


class BraxEnv(Environment[Any, BraxParams]):
    """The Brax environment ``name`` (see ``BraxEnv.available()``) as a raw env.

    Args:
        name: a Brax environment name such as ``"ant"`` or ``"inverted_pendulum"``.
    """

    def __init__(self, name: str):
        if name not in self.available():
            close = difflib.get_close_matches(name, self.available(), n=5, cutoff=0.4)
            hint = f" Closest Brax names: {', '.join(close)}." if close else ""
            raise ValueError(f"Unknown Brax environment {name!r}.{hint}")
        import brax.envs

        self.env_name = name
        self._cls = brax.envs._envs[name]
        self._brax_envs: dict[str, Any] = {}
        self._size_cache: dict[str, tuple[int, int]] = {}
        doc = (sys.modules[self._cls.__module__].__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else self._cls.__name__
        self.description = f"Brax {name}: {summary}"

    @staticmethod
    def available() -> list[str]:
        """Every name in Brax's environment registry."""
        import brax.envs

        # ``_envs`` is the registry behind ``brax.envs.get_environment``; Brax
        # has no public listing.
        return sorted(brax.envs._envs)

    @property
    def name(self) -> str:
        return f"brax:{self.env_name}"

    @property
    def default_backend(self) -> str:
        """The backend the Brax class defaults to ("generalized" if it takes none)."""
        parameter = inspect.signature(self._cls.__init__).parameters.get("backend")
        if parameter is None or parameter.default not in BACKENDS:
            return "generalized"
        return parameter.default

    def default_params(self, **overrides: Any) -> BraxParams:
        return apply_overrides(BraxParams(backend=self.default_backend), overrides)

    def brax_env(self, backend: str) -> Any:
        """The underlying Brax environment for ``backend``, built once.

        The first call may come while a ``jit`` is tracing; the build runs under
        ``ensure_compile_time_eval`` so that the arrays Brax makes of its model
        are concrete, not tracers of that one trace leaking into later ones."""
        if backend not in self._brax_envs:
            import brax.envs

            try:
                with jax.ensure_compile_time_eval():
                    env = brax.envs.get_environment(self.env_name, backend=backend)
                self._brax_envs[backend] = env
            except Exception as error:
                raise ValueError(
                    f"brax:{self.env_name} could not be built with backend={backend!r}: {error}"
                ) from error
        return self._brax_envs[backend]

    def reset(self, key: jax.Array, params: BraxParams) -> tuple[Any, TimeStep]:
        with _brax_numpy():
            state = _strong(self.brax_env(params.backend).reset(key))
        return state, restart(jnp.asarray(state.obs, jnp.float32))

    def step(
        self, key: jax.Array, state: Any, action: Any, params: BraxParams
    ) -> tuple[Any, TimeStep]:
        del key  # Brax dynamics are deterministic
        action = jnp.asarray(action, jnp.float32)
        with _brax_numpy():
            state = _strong(self.brax_env(params.backend).step(state, action))
        obs = jnp.asarray(state.obs, jnp.float32)
        return state, transition(obs, state.reward, state.done > 0.5, truncated=False)

    def _sizes(self, params: BraxParams) -> tuple[int, int]:
        """(observation size, action size), from a shape-only reset (cached)."""
        backend = params.backend
        if backend not in self._size_cache:
            env = self.brax_env(backend)
            with _brax_numpy():
                obs = jax.eval_shape(env.reset, jax.random.key(0)).obs
            if not hasattr(obs, "shape") or len(obs.shape) != 1:
                raise TypeError(f"brax:{self.env_name}: only flat array observations are supported")
            self._size_cache[backend] = (obs.shape[0], int(env.action_size))
        return self._size_cache[backend]

    def observation_space(self, params: BraxParams) -> Space:
        size, _ = self._sizes(params)
        return Box(-jnp.inf, jnp.inf, (size,), jnp.float32)

    def action_space(self, params: BraxParams) -> Space:
        _, size = self._sizes(params)
        return Box(-1.0, 1.0, (size,), jnp.float32)

    def __repr__(self) -> str:
        return f"BraxEnv({self.env_name!r})"
