"""Returns and GAE against plain NumPy loops, with terminations and truncations
mid-sequence, plus the λ identities; run eagerly and under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import returns

T, B, GAMMA = 23, 3, 0.9


def random_rollout(seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, B)).astype(np.float32)
    v = rng.normal(size=(T, B)).astype(np.float32)
    v_next = rng.normal(size=(T, B)).astype(np.float32)
    end = rng.random((T, B))
    terminated = end < 0.15
    truncated = (end >= 0.15) & (end < 0.3)
    # Where the episode continues, V(next obs) is V(obs_{t+1}).
    cont = ~(terminated | truncated)
    v_next[:-1][cont[:-1]] = v[1:][cont[:-1]]
    return r, terminated, truncated, v, v_next


def numpy_episode_sum(r, term, trunc, v_next, t, b, horizon, gamma):
    """sum_{k<horizon} gamma^k r_{t+k} + gamma^k' V(bootstrap), cut at episode ends."""
    total, scale = 0.0, 1.0
    for k in range(horizon):
        s = t + k
        total += scale * r[s, b]
        if term[s, b]:
            return total
        if trunc[s, b] or s == T - 1 or k == horizon - 1:
            return total + scale * gamma * v_next[s, b]
        scale *= gamma
    raise AssertionError("unreachable")


def numpy_lambda_return(r, term, trunc, v_next, t, b, lam, gamma):
    # G^λ = (1-λ) sum_n λ^{n-1} G^n, with the remaining weight on the longest return.
    max_n = T - t
    total, weight = 0.0, 1.0
    for n in range(1, max_n + 1):
        g_n = numpy_episode_sum(r, term, trunc, v_next, t, b, n, gamma)
        w = weight * (1 - lam) if n < max_n else weight
        total += w * g_n
        weight *= lam
    return total


def numpy_gae(r, term, trunc, v, v_next, lam, gamma):
    adv = np.zeros_like(r)
    for b in range(B):
        a_next = 0.0
        for t in reversed(range(T)):
            delta = r[t, b] + gamma * (1 - term[t, b]) * v_next[t, b] - v[t, b]
            cont = 0.0 if (term[t, b] or trunc[t, b]) else 1.0
            a_next = delta + gamma * lam * cont * a_next
            adv[t, b] = a_next
    return adv


@pytest.fixture(params=[0, 1])
def rollout(request):
    return random_rollout(request.param)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_lambda_returns_match_numpy(rollout, lam, jit):
    r, term, trunc, _, v_next = rollout
    fn = returns.lambda_returns
    fn = jax.jit(fn) if jit else fn
    got = fn(r, term, trunc, v_next, GAMMA, lam)
    want = [
        [numpy_lambda_return(r, term, trunc, v_next, t, b, lam, GAMMA) for b in range(B)]
        for t in range(T)
    ]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
def test_gae_matches_numpy_and_targets_are_lambda_returns(rollout, lam):
    r, term, trunc, v, v_next = rollout
    adv, targets = jax.jit(returns.gae)(r, term, trunc, v, v_next, GAMMA, lam)
    np.testing.assert_allclose(
        adv, numpy_gae(r, term, trunc, v, v_next, lam, GAMMA), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        targets, returns.lambda_returns(r, term, trunc, v_next, GAMMA, lam), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("segment", [1, 5, 7, T])
def test_gae_over_segment_ends_is_gae_of_each_segment_alone(rollout, segment):
    # brax.training's unroll_length: every segment is a rollout of its own, bootstrapped
    # from V(next obs) at its last step (T = 23 leaves a short last segment for 5 and 7).
    r, term, trunc, v, v_next = rollout
    cut = returns.segment_ends(jnp.asarray(trunc), segment)
    adv, _ = jax.jit(returns.gae)(r, term, cut, v, v_next, GAMMA, 0.9)
    for start in range(0, T, segment):
        part = slice(start, start + segment)
        alone, _ = returns.gae(r[part], term[part], trunc[part], v[part], v_next[part], GAMMA, 0.9)
        np.testing.assert_allclose(adv[part], alone, rtol=1e-5, atol=1e-5)
    assert returns.segment_ends(trunc, 0) is trunc


def test_lambda_one_is_monte_carlo_and_zero_is_td(rollout):
    r, term, trunc, _, v_next = rollout
    mc = returns.reward_to_go(r, term, trunc, v_next, GAMMA)
    want = [
        [numpy_episode_sum(r, term, trunc, v_next, t, b, T, GAMMA) for b in range(B)]
        for t in range(T)
    ]
    np.testing.assert_allclose(mc, np.array(want), rtol=1e-4, atol=1e-4)
    td = returns.lambda_returns(r, term, trunc, v_next, GAMMA, 0.0)
    np.testing.assert_allclose(td, r + GAMMA * (1 - term) * v_next, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 3, 50])
def test_n_step_returns_match_numpy(rollout, n):
    r, term, trunc, _, v_next = rollout
    got = returns.n_step_returns(r, term, trunc, v_next, GAMMA, n)
    want = [
        [numpy_episode_sum(r, term, trunc, v_next, t, b, n, GAMMA) for b in range(B)]
        for t in range(T)
    ]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-4, atol=1e-4)


def test_truncation_bootstraps_and_termination_does_not():
    # Reward 1 every step; step 1 truncated with V(final_obs) = 10, step 3 terminated.
    r = jnp.ones(4)
    term = jnp.array([False, False, False, True])
    trunc = jnp.array([False, True, False, False])
    v_next = jnp.array([0.0, 10.0, 0.0, 123.0])
    g = returns.reward_to_go(r, term, trunc, v_next, 0.5)
    np.testing.assert_allclose(g, [1 + 0.5 * 6.0, 1 + 0.5 * 10.0, 1.5, 1.0])


def test_n_step_rejects_bad_n():
    with pytest.raises(ValueError, match="n=0"):
        returns.n_step_returns(
            jnp.ones(3), jnp.zeros(3, bool), jnp.zeros(3, bool), jnp.ones(3), 0.9, 0
        )
