"""Shuffling a batch into minibatches, as one permutation and one reshape.

``batch`` is any pytree of arrays that share leading axes; ``sample_axes``
leading axes are flattened into one sample axis first (2 for a ``[T, B]``
rollout, 1 to keep time intact and shuffle whole environment sequences, as
recurrent policies need: pass the rollout transposed to ``[B, T]``).

Why not ``jax.random.permutation``: it sorts random keys (two sort passes for a
batch of 16k samples), which on a CPU was a third of a PPO update on CartPole,
and a run split over devices repeats it on each. ``permutation`` is instead a
keyed pseudo-random bijection evaluated elementwise: a balanced Feistel network
(Luby and Rackoff 1988) on the smallest even number of bits that covers ``n``,
with cycle walking (Black and Rogaway 2002) to map ``[0, n)`` onto itself;
about 25 times faster at 16k samples, and not a uniform draw over all ``n!``
permutations, which minibatch SGD does not need.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def num_samples(batch: Any, sample_axes: int = 1) -> int:
    leaf = jax.tree.leaves(batch)[0]
    size = 1
    for dim in leaf.shape[:sample_axes]:
        size *= dim
    return size


_ROUNDS = 6


def _mix(x: jax.Array, key: jax.Array) -> jax.Array:
    """A 32-bit integer hash of ``x ^ key`` (the "lowbias32" finaliser)."""
    h = (x ^ key) * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A pseudo-random permutation of ``0 .. n-1`` (int32), drawn from ``key``.

    Each position's value is computed on its own (no sort): a Feistel network of
    ``_ROUNDS`` rounds with ``_mix`` as round function permutes ``[0, 2^bits)``;
    values that land at or beyond ``n`` are encrypted again until they fall in
    range (cycle walking ends: the cycle through a value below ``n`` returns to one).
    """
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (_ROUNDS,), jnp.uint32)

    def encrypt(x):
        left, right = x >> half, x & mask
        for r in range(_ROUNDS):
            left, right = right, left ^ (_mix(right, round_keys[r]) & mask)
        return (left << half) | right

    x = encrypt(jnp.arange(n, dtype=jnp.uint32))
    x = jax.lax.while_loop(lambda x: jnp.any(x >= n), lambda x: jnp.where(x >= n, encrypt(x), x), x)
    return x.astype(jnp.int32)


def shuffle_minibatches(
    key: jax.Array, batch: Any, num_minibatches: int, sample_axes: int = 1
) -> Any:
    """Leaves ``[*sample_dims, ...]`` -> ``[num_minibatches, samples // num_minibatches, ...]``.

    The number of samples must divide by ``num_minibatches`` (agents validate
    this in their config, before compiling).
    """
    n = num_samples(batch, sample_axes)
    if n % num_minibatches:
        raise ValueError(
            f"shuffle_minibatches: {n} samples do not divide into num_minibatches={num_minibatches}"
        )
    flat = jax.tree.map(lambda x: x.reshape((n,) + x.shape[sample_axes:]), batch)
    perm = permutation(key, n)
    return jax.tree.map(
        lambda x: jnp.take(x, perm, axis=0).reshape(
            (num_minibatches, n // num_minibatches) + x.shape[1:]
        ),
        flat,
    )
