"""Jittable observation and action spaces.

Deliberately tiny: ``Discrete`` and ``Box`` cover every built-in environment and
the gymnax and Brax adapters. ``sample`` and ``contains`` are pure functions, so
both work under ``jit`` and ``vmap``. ``to_gymnasium_space`` converts for the
Gymnasium bridge. (gymnax's own spaces differ in dtype handling and import
gymnasium eagerly, so we keep ours and convert at the adapter boundary.)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class Space:
    """A set of values with a uniform sampler."""

    shape: tuple[int, ...]
    dtype: Any

    def sample(self, key: jax.Array) -> jax.Array:
        raise NotImplementedError

    def contains(self, x: jax.Array) -> jax.Array:
        """Boolean scalar: ``x`` has this space's shape and lies inside it."""
        raise NotImplementedError


class Discrete(Space):
    """Integers ``0 .. n - 1``.

    Args:
        n: number of values; at least 1.
    """

    def __init__(self, n: int, dtype: Any = jnp.int32):
        if int(n) < 1:
            raise ValueError(f"Discrete: n={n} is not allowed; it must be >= 1")
        self.n = int(n)
        self.shape = ()
        self.dtype = jnp.dtype(dtype)

    def __repr__(self) -> str:
        return f"Discrete({self.n})"

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != ():
            return jnp.asarray(False)
        integral = jnp.issubdtype(x.dtype, jnp.integer) | (jnp.floor(x) == x)
        return integral & (x >= 0) & (x < self.n)


class Box(Space):
    """An axis-aligned box ``low <= x <= high`` of a fixed shape and dtype.

    Args:
        low, high: bounds, Python scalars or NumPy arrays (static, never traced)
            broadcastable to ``shape``
            (``-inf``/``inf`` for unbounded floats).
        shape: the shape of one element.
        dtype: element dtype (float32 unless said otherwise).
    """

    def __init__(self, low: Any, high: Any, shape: tuple[int, ...], dtype: Any = jnp.float32):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = jnp.dtype(dtype)
        self.low = np.broadcast_to(np.asarray(low, dtype=self.dtype), self.shape)
        self.high = np.broadcast_to(np.asarray(high, dtype=self.dtype), self.shape)
        if np.any(self.low > self.high):
            raise ValueError(f"Box: low={low} exceeds high={high}; low must be <= high")

    def __repr__(self) -> str:
        return f"Box(shape={self.shape}, dtype={self.dtype.name})"

    def sample(self, key: jax.Array) -> jax.Array:
        if jnp.issubdtype(self.dtype, jnp.bool_):
            return jax.random.bernoulli(key, 0.5, self.shape)
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(
                key, self.shape, self.low, self.high.astype(np.int64) + 1, dtype=self.dtype
            )
        # Unbounded sides are sampled from a unit normal around the finite bound.
        low, high = jnp.asarray(self.low), jnp.asarray(self.high)
        u_key, n_key = jax.random.split(key)
        uniform = jax.random.uniform(u_key, self.shape, self.dtype, 0.0, 1.0)
        normal = jax.random.normal(n_key, self.shape, self.dtype)
        finite_lo, finite_hi = jnp.isfinite(low), jnp.isfinite(high)
        both = low + uniform * (high - low)
        only_lo = low + jnp.abs(normal)
        only_hi = high - jnp.abs(normal)
        return jnp.where(
            finite_lo & finite_hi,
            both,
            jnp.where(finite_lo, only_lo, jnp.where(finite_hi, only_hi, normal)),
        )

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        if jnp.issubdtype(self.dtype, jnp.bool_):
            return jnp.asarray(True)
        inside = (x >= self.low) & (x <= self.high)
        return jnp.all(inside & ~jnp.isnan(x))


def to_gymnasium_space(space: Space):
    """Convert to the equivalent ``gymnasium.spaces`` object (NumPy dtypes)."""
    from gymnasium import spaces as gym_spaces

    if isinstance(space, Discrete):
        return gym_spaces.Discrete(space.n)
    if isinstance(space, Box):
        if jnp.issubdtype(space.dtype, jnp.bool_):
            return gym_spaces.MultiBinary(space.shape)
        return gym_spaces.Box(space.low, space.high, space.shape, np.dtype(space.dtype))
    raise TypeError(f"no Gymnasium equivalent for {space!r}")
