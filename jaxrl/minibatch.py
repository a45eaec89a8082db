"""Shuffling a batch into minibatches, as one permutation and one reshape.

``batch`` is any pytree of arrays that share leading axes; ``sample_axes``
leading axes are flattened into one sample axis first (2 for a ``[T, B]``
rollout, 1 to keep time intact and shuffle whole environment sequences, as
recurrent policies need: pass the rollout transposed to ``[B, T]``).
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
    perm = jax.random.permutation(key, n)
    return jax.tree.map(
        lambda x: jnp.take(x, perm, axis=0).reshape(
            (num_minibatches, n // num_minibatches) + x.shape[1:]
        ),
        flat,
    )
