"""Distributions against scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxrl.distributions import Categorical, DiagGaussian, TanhGaussian

RNG = np.random.default_rng(0)


def test_categorical_matches_scipy_and_samples_frequencies():
    logits = RNG.normal(size=(4, 5)).astype(np.float32)
    dist = Categorical(jnp.asarray(logits))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    actions = np.array([0, 3, 4, 1])
    np.testing.assert_allclose(
        dist.log_prob(actions), np.log(probs[np.arange(4), actions]), rtol=1e-5
    )
    np.testing.assert_allclose(dist.entropy(), [stats.entropy(p) for p in probs], rtol=1e-5)
    np.testing.assert_array_equal(dist.mode(), probs.argmax(-1))
    samples = jax.vmap(Categorical(jnp.asarray(logits[0])).sample)(
        jax.random.split(jax.random.key(0), 20000)
    )
    np.testing.assert_allclose(np.bincount(samples, minlength=5) / 20000, probs[0], atol=0.015)
    other = Categorical(jnp.asarray(RNG.normal(size=(4, 5)).astype(np.float32)))
    q = np.asarray(other.probs())
    np.testing.assert_allclose(
        dist.kl(other), [stats.entropy(p, qq) for p, qq in zip(probs, q, strict=True)], rtol=1e-4
    )


def test_diag_gaussian_matches_scipy():
    mean, log_std = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 2)) * 0.3
    x = RNG.normal(size=(3, 2))
    dist = DiagGaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32))
    want = stats.norm(mean, np.exp(log_std)).logpdf(x).sum(-1)
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(x, jnp.float32)), want, rtol=1e-5)
    np.testing.assert_allclose(
        dist.entropy(), stats.norm(mean, np.exp(log_std)).entropy().sum(-1), rtol=1e-5
    )
    samples = jax.vmap(dist.sample)(jax.random.split(jax.random.key(1), 20000))
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(samples.std(0), np.exp(log_std), rtol=0.05)
    other = DiagGaussian(jnp.zeros((3, 2)), jnp.zeros((3, 2)))
    # KL(N(m, s^2) || N(0, 1)) per dimension: log(1/s) + (s^2 + m^2)/2 - 1/2
    s2 = np.exp(2 * log_std)
    np.testing.assert_allclose(
        dist.kl(other), (-log_std + (s2 + mean**2) / 2 - 0.5).sum(-1), rtol=1e-4
    )


def test_tanh_gaussian_log_prob_is_change_of_variables_and_finite_at_bounds():
    mean, log_std = np.array([0.3, -0.5]), np.array([-0.2, 0.1])
    dist = TanhGaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32))
    a = np.array([0.2, -0.7])
    u = np.arctanh(a)
    want = (stats.norm(mean, np.exp(log_std)).logpdf(u) - np.log(1 - a**2)).sum()
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(a, jnp.float32)), want, rtol=1e-4)
    assert np.isfinite(dist.log_prob(jnp.array([1.0, -1.0])))
    # Far-out means saturate tanh: the stable sample log-prob stays finite.
    wide = TanhGaussian(jnp.array([30.0, -30.0]), jnp.array([0.0, 0.0]))
    action, log_prob = wide.sample_and_log_prob(jax.random.key(0))
    assert np.isfinite(log_prob) and np.all(np.abs(action) <= 1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_tanh_gaussian_sample_log_prob_agrees_with_log_prob(seed):
    dist = TanhGaussian(jnp.array([0.1, 0.4]), jnp.array([-0.5, -1.0]))
    action, log_prob = dist.sample_and_log_prob(jax.random.key(seed))
    np.testing.assert_allclose(log_prob, dist.log_prob(action), rtol=1e-3)
    np.testing.assert_allclose(dist.mode(), np.tanh([0.1, 0.4]), rtol=1e-6)


def test_tanh_gaussian_pre_squash_log_prob_is_exact_where_atanh_saturates():
    mean, log_std = np.array([8.0, -1.0]), np.array([0.5, -0.3])
    dist = TanhGaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32))
    # log(1 - tanh(u)^2) = 2 (log 2 - |u| - log(1 + exp(-2|u|))), exact in float64
    log_jac = lambda u: 2 * (np.log(2) - np.abs(u) - np.log1p(np.exp(-2 * np.abs(u))))
    for u in (np.array([0.3, -0.6]), np.array([11.0, -0.6])):
        want = (stats.norm(mean, np.exp(log_std)).logpdf(u) - log_jac(u)).sum()
        got = dist.log_prob_pre_squash(jnp.asarray(u, jnp.float32))
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # tanh(11) is 1.0 in float32: log_prob can only see atanh(1 - EPS) = 7.25, off by a lot.
    saturated = jnp.tanh(jnp.array([11.0, -0.6], jnp.float32))
    assert abs(float(dist.log_prob(saturated)) - want) > 1.0
    u = dist.sample_pre_squash(jax.random.key(3))
    action, log_prob = dist.sample_and_log_prob(jax.random.key(3))
    np.testing.assert_allclose(action, np.tanh(u), rtol=1e-6)
    np.testing.assert_allclose(log_prob, dist.log_prob_pre_squash(u), rtol=1e-6)
