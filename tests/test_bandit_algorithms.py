"""Bandit algorithms (jaxrl.bandits): hand-computed posteriors and scores, the
Sherman-Morrison inverse against a direct one, the Beta sampler against SciPy,
vmap over hyperparameters against single runs, input validation, and learning:
regret that grows sub-linearly and the expected orderings between algorithms.

Each learning run (256 runs x 10,000 pulls, one problem instance per run, the
same instances for every algorithm) is compiled and run once per module and
shared by the tests that read it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import envs
from jaxrl import bandits as B

NUM_RUNS = 256
NUM_STEPS = 10_000


@pytest.fixture(scope="module")
def learning():
    """``get(algorithm, env_name) -> (mean cumulative regret (NUM_STEPS,), actions (runs, 20))``,
    each pair run once with default hyperparameters."""
    cache = {}
    keys = jax.random.split(jax.random.key(0), NUM_RUNS)

    def get(algorithm, env_name):
        if (algorithm.name, env_name) not in cache:
            env, params = envs.make(env_name, raw=True)
            run = B.make_run(algorithm, env, params, NUM_STEPS)
            _, metrics = jax.jit(jax.vmap(run, in_axes=(0, None)))(keys, algorithm.hparams)
            regret = np.cumsum(np.asarray(metrics["regret"], np.float64), axis=1).mean(0)
            cache[algorithm.name, env_name] = (regret, np.asarray(metrics["action"][:, :20]))
        return cache[algorithm.name, env_name]

    return get


# Learning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm, env_name",
    [
        (B.UCB1, "Bandit-Bernoulli"),
        (B.BETA_THOMPSON, "Bandit-Bernoulli"),
        (B.GAUSSIAN_THOMPSON, "Bandit-Gaussian"),
    ],
    ids=lambda x: getattr(x, "name", x),
)
def test_regret_grows_sublinearly(learning, algorithm, env_name):
    regret, _ = learning(algorithm, env_name)
    # Linear growth would give 10x; a logarithmic rate gives about log(1e4)/log(1e3) = 1.33x.
    assert regret[999] > 0
    assert regret[-1] < 3 * regret[999], (regret[999], regret[-1])


def test_thompson_sampling_beats_epsilon_greedy(learning):
    thompson, _ = learning(B.BETA_THOMPSON, "Bandit-Bernoulli")
    eps_greedy, _ = learning(B.EPSILON_GREEDY, "Bandit-Bernoulli")
    assert thompson[-1] < eps_greedy[-1], (thompson[-1], eps_greedy[-1])


@pytest.mark.parametrize("algorithm", [B.LINUCB, B.LINEAR_THOMPSON], ids=lambda a: a.name)
def test_contextual_algorithms_beat_ucb1_on_a_linear_bandit(learning, algorithm):
    contextual, _ = learning(algorithm, "ContextualBandit-Linear")
    ucb1, _ = learning(B.UCB1, "ContextualBandit-Linear")
    assert contextual[-1] < ucb1[-1], (contextual[-1], ucb1[-1])


def test_ucb1_pulls_every_arm_once_first(learning):
    _, actions = learning(B.UCB1, "Bandit-Bernoulli")
    num_arms = envs.make("Bandit-Bernoulli", raw=True)[1].num_arms
    np.testing.assert_array_equal(
        np.sort(actions[:, :num_arms], axis=1), np.tile(np.arange(num_arms), (NUM_RUNS, 1))
    )
    # Random tie-breaking: the first pull is not always arm 0.
    assert len(np.unique(actions[:, 0])) > 1


# Hand-computed expectations ----------------------------------------------------------


def _feed(algorithm, hparams, num_arms, context_dim, pulls):
    """The state after ``update`` on each ``(context, action, reward)`` of ``pulls``."""
    state = algorithm.init(num_arms, context_dim, hparams)
    for context, action, reward in pulls:
        state = algorithm.update(
            state,
            jnp.asarray(context, jnp.float32),
            jnp.int32(action),
            jnp.float32(reward),
            hparams,
        )
    return state


def test_beta_posterior_counts_successes_and_failures():
    hp = B.BetaThompsonHParams(prior_alpha=2.0, prior_beta=3.0)
    pulls = [([0.0], 2, 1.0), ([0.0], 2, 0.0), ([0.0], 0, 0.0), ([0.0], 2, 1.0), ([0.0], 2, 1.0)]
    a, b = B.beta_posterior(_feed(B.BETA_THOMPSON, hp, 4, 1, pulls), hp)
    # arm 0: one failure; arm 2: three successes and one failure; arms 1, 3: the prior.
    np.testing.assert_array_equal(a, [2.0, 2.0, 5.0, 2.0])
    np.testing.assert_array_equal(b, [4.0, 3.0, 4.0, 3.0])


def test_ucb1_scores_by_hand():
    stats = B.ArmStats(counts=jnp.array([2.0, 1.0, 0.0]), sums=jnp.array([1.0, 1.0, 0.0]))
    scores = B.ucb1_scores(stats, B.UCB1HParams(ucb_scale=0.5))
    # t = 3 pulls: mean + 0.5 sqrt(2 ln 3 / n); the unpulled arm comes first.
    expected = [0.5 + 0.5 * np.sqrt(np.log(3.0)), 1.0 + 0.5 * np.sqrt(2 * np.log(3.0)), np.inf]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_gaussian_posterior_by_hand():
    stats = B.ArmStats(counts=jnp.array([0.0, 4.0]), sums=jnp.array([0.0, 2.0]))
    mean, std = B.gaussian_posterior(stats, B.GaussianThompsonHParams(prior_std=2.0, noise_std=1.0))
    # precision 1/4 + n: arm 0 keeps the prior N(0, 4); arm 1 has mean 2/4.25, std 1/sqrt(4.25).
    np.testing.assert_allclose(mean, [0.0, 2.0 / 4.25], rtol=1e-6)
    np.testing.assert_allclose(std, [2.0, 1.0 / np.sqrt(4.25)], rtol=1e-6)


def test_epsilon_schedule_by_hand():
    hp = B.EpsilonGreedyHParams(eps_start=0.8, eps_end=0.1, eps_decay=0.5)
    eps = [float(B.epsilon_schedule(jnp.float32(t), hp)) for t in range(5)]
    np.testing.assert_allclose(eps, [0.8, 0.4, 0.2, 0.1, 0.1], rtol=1e-6)


def test_sherman_morrison_inverse_equals_direct_inverse():
    rng = np.random.default_rng(0)
    num_arms, d, ridge = 3, 4, 0.5
    contexts = rng.normal(size=(60, d))
    actions = rng.integers(0, num_arms, 60)
    rewards = rng.normal(size=60)
    hp = B.LinUCBHParams(ridge=ridge)
    state = _feed(B.LINUCB, hp, num_arms, d, zip(contexts, actions, rewards, strict=True))
    for k in range(num_arms):
        x, r = contexts[actions == k], rewards[actions == k]
        a = ridge * np.eye(d) + x.T @ x
        np.testing.assert_allclose(state.a_inv[k], np.linalg.inv(a), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(state.b[k], r @ x, rtol=1e-5, atol=1e-5)
        # The ridge estimate and variance factor at a new context, against a direct solve.
        z = rng.normal(size=d)
        mean, var = B.linear_posterior(state, jnp.asarray(z, jnp.float32))
        np.testing.assert_allclose(mean[k], z @ np.linalg.solve(a, r @ x), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(var[k], z @ np.linalg.solve(a, z), rtol=1e-4, atol=1e-6)


def test_argmax_random_ties_picks_uniformly_among_the_best():
    scores = jnp.array([1.0, 3.0, 0.0, 3.0, 3.0])
    keys = jax.random.split(jax.random.key(1), 3000)
    picks = np.asarray(jax.vmap(B.argmax_random_ties, in_axes=(0, None))(keys, scores))
    counts = np.bincount(picks, minlength=5)
    assert counts[0] == counts[2] == 0
    assert scipy.stats.chisquare(counts[[1, 3, 4]]).pvalue > 0.001, counts


def test_beta_draws_match_scipy():
    params = [(1.0, 1.0), (0.3, 2.0), (5.0, 0.5), (40.0, 160.0)]
    n = 20_000
    a = jnp.repeat(jnp.array([p[0] for p in params]), n)
    b = jnp.repeat(jnp.array([p[1] for p in params]), n)
    logits = jax.jit(B.sample_beta_logit)(jax.random.key(2), a, b)
    draws = np.asarray(jax.nn.sigmoid(logits)).reshape(len(params), n)
    for (pa, pb), x in zip(params, draws, strict=True):
        assert scipy.stats.kstest(x, scipy.stats.beta(pa, pb).cdf).pvalue > 0.001, (pa, pb)


def test_vmap_over_hparams_equals_single_runs():
    env, params = envs.make("Bandit-Bernoulli", raw=True)
    run = jax.vmap(B.make_run(B.EPSILON_GREEDY, env, params, 100), in_axes=(0, None))
    keys = jax.random.split(jax.random.key(3), 4)
    settings = [
        B.EpsilonGreedyHParams(eps_start=0.9, eps_end=0.05, eps_decay=0.97),
        B.EpsilonGreedyHParams(eps_start=0.2, eps_end=0.2, eps_decay=1.0),
    ]
    stacked = jax.tree.map(lambda *x: jnp.array(x), *settings)
    _, swept = jax.jit(jax.vmap(run, in_axes=(None, 0)))(keys, stacked)
    single = jax.jit(run)
    for i, hp in enumerate(settings):
        _, metrics = single(keys, hp)
        for name in ("action", "regret", "reward", "optimal"):
            np.testing.assert_array_equal(swept[name][i], metrics[name], err_msg=name)
    assert not np.array_equal(swept["action"][0], swept["action"][1])


# Validation -------------------------------------------------------------------------


def test_make_run_rejects_bad_input():
    bernoulli, bernoulli_params = envs.make("Bandit-Bernoulli", raw=True)
    gaussian, gaussian_params = envs.make("Bandit-Gaussian", raw=True)
    linear, linear_params = envs.make("ContextualBandit-Linear", raw=True)
    with pytest.raises(ValueError, match=r"make_run\.num_steps=0 is not allowed; it must be"):
        B.make_run(B.UCB1, bernoulli, bernoulli_params, 0)
    grid, grid_params = envs.make("GridWorld-Empty-8x8")
    with pytest.raises(ValueError, match="must be one of BernoulliBandit, GaussianBandit"):
        B.make_run(B.UCB1, grid, grid_params, 10)
    with pytest.raises(ValueError, match="not allowed for linucb.*needs a ContextualBandit"):
        B.make_run(B.LINUCB, bernoulli, bernoulli_params, 10)
    with pytest.raises(ValueError, match="not allowed for linear-thompson"):
        B.make_run(B.LINEAR_THOMPSON, gaussian, gaussian_params, 10)
    with pytest.raises(ValueError, match=r"beta-thompson; it needs rewards in \{0, 1\}"):
        B.make_run(B.BETA_THOMPSON, gaussian, gaussian_params, 10)
    with pytest.raises(ValueError, match=r"beta-thompson; it needs rewards in \{0, 1\}"):
        B.make_run(B.BETA_THOMPSON, linear, linear_params, 10)


def test_make_run_accepts_wrapped_and_logistic_envs():
    wrapped, params = envs.make("Bandit-Bernoulli")  # time limit, auto-reset, statistics
    assert B.make_run(B.UCB1, wrapped, params, 10) is not None
    logistic, logistic_params = envs.make("ContextualBandit-Linear", raw=True, link="logistic")
    assert B.make_run(B.BETA_THOMPSON, logistic, logistic_params, 10) is not None
    assert B.unsupported_reason(B.LINUCB, logistic, logistic_params) is None


def test_run_rejects_bad_hparams_before_tracing():
    env, params = envs.make("Bandit-Bernoulli", raw=True)
    run = B.make_run(B.UCB1, env, params, 10)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"UCB1HParams\.ucb_scale=-1.0 is not allowed"):
        run(key, B.UCB1HParams(ucb_scale=-1.0))
    with pytest.raises(ValueError, match=r"BetaThompsonHParams\.prior_alpha=0.0 is not allowed"):
        B.make_run(B.BETA_THOMPSON, env, params, 10)(
            key, B.BetaThompsonHParams(prior_alpha=0.0, prior_beta=1.0)
        )
    with pytest.raises(TypeError, match="ucb1 takes UCB1HParams, not LinUCBHParams"):
        run(key, B.LinUCBHParams())
