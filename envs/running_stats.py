"""Running mean and variance as a pytree, updated with batches of samples.

Used by the observation-normalisation wrapper here and by agents' normalisers
(``jaxrl`` imports it; ``envs`` never imports ``jaxrl``). The update is the
parallel form of Welford's algorithm (Chan et al., 1979), exact for any batch
size, so merging statistics from several devices gives the same result as one
pass over all samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RunningStats(NamedTuple):
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def init(shape: tuple[int, ...]) -> RunningStats:
    """Zero mean, unit variance, and a tiny count so the first update dominates."""
    return RunningStats(
        jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(1e-4, jnp.float32)
    )


def merge(a: RunningStats, b: RunningStats) -> RunningStats:
    """Combine statistics of two disjoint sample sets."""
    count = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * b.count / count
    m2 = a.var * a.count + b.var * b.count + jnp.square(delta) * a.count * b.count / count
    return RunningStats(mean, m2 / count, count)


def update(stats: RunningStats, batch: jax.Array, axis_name: str | None = None) -> RunningStats:
    """Add samples ``batch[..., *shape]``; all leading axes are sample axes.

    With ``axis_name`` (inside ``jax.shard_map``), every device holds an equal
    share of the samples and all get the statistics of the whole batch: the
    shares' means and variances are averaged across the axis (exact for equal
    shares: the batch variance is the mean of the shares' variances plus the
    variance of their means).
    """
    batch = jnp.asarray(batch, jnp.float32)
    feature_ndim = stats.mean.ndim
    flat = batch.reshape((-1,) + batch.shape[batch.ndim - feature_ndim :])
    mean, var, count = flat.mean(axis=0), flat.var(axis=0), jnp.float32(flat.shape[0])
    if axis_name is not None:
        share_mean = mean
        mean = jax.lax.pmean(share_mean, axis_name)
        var = jax.lax.pmean(var + jnp.square(share_mean - mean), axis_name)
        count = jax.lax.psum(count, axis_name)
    return merge(stats, RunningStats(mean, var, count))


def normalize(
    stats: RunningStats, x: jax.Array, clip: float = 10.0, eps: float = 1e-8
) -> jax.Array:
    """``(x - mean) / sqrt(var + eps)``, clipped to ``[-clip, clip]``; ``x`` may have
    leading batch axes."""
    x = jnp.asarray(x, jnp.float32)
    lead = (1,) * (x.ndim - stats.mean.ndim)
    mean, var = (
        stats.mean.reshape(lead + stats.mean.shape),
        stats.var.reshape(lead + stats.var.shape),
    )
    return jnp.clip((x - mean) / jnp.sqrt(var + eps), -clip, clip)
