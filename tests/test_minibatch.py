"""Minibatch shuffling: the keyed Feistel permutation and the reshape around it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import minibatch


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 100, 1000, 16384])
def test_permutation_is_a_bijection_of_range_n(n):
    perm = np.asarray(jax.jit(minibatch.permutation, static_argnums=1)(jax.random.key(n), n))
    assert perm.dtype == np.int32
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_permutation_depends_on_the_key_and_looks_uniform():
    n, draws = 10, 2000
    keys = jax.random.split(jax.random.key(0), draws)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: minibatch.permutation(k, n)))(keys))
    assert len({p.tobytes() for p in perms}) > draws * 0.9  # 10! >> 2000: nearly all distinct
    # Where each value lands: every position about 1/n of the time (chi-square, 81 dof,
    # p < 1e-6 beyond 150), and no value stays put more than chance allows.
    counts = np.stack([np.bincount(perms[:, v], minlength=n) for v in range(n)])
    expected = draws / n
    assert ((counts - expected) ** 2 / expected).sum() < 150
    assert np.mean(perms == np.arange(n)) == pytest.approx(1 / n, abs=0.02)


def test_shuffle_minibatches_keeps_samples_whole_and_covers_each_once():
    t, b = 6, 4
    batch = {"x": jnp.arange(t * b).reshape(t, b), "y": -jnp.arange(t * b).reshape(t, b) * 2}
    mbs = minibatch.shuffle_minibatches(jax.random.key(3), batch, 3, sample_axes=2)
    assert mbs["x"].shape == (3, 8)
    np.testing.assert_array_equal(np.sort(np.asarray(mbs["x"]).ravel()), np.arange(t * b))
    np.testing.assert_array_equal(np.asarray(mbs["y"]), -2 * np.asarray(mbs["x"]))
    with pytest.raises(ValueError, match="do not divide into num_minibatches=5"):
        minibatch.shuffle_minibatches(jax.random.key(3), batch, 5, sample_axes=2)
