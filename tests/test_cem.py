"""CEM and random search: the elite refit on hand-made populations, bad configs, a
hyperparameter sweep as one vmap, the probes (discrete and continuous), and CEM
solving CartPole. The contract every agent keeps is tested in test_agent_contract.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl.agents import cem
from jaxrl.evaluate import episode_limit, evaluate


@pytest.mark.parametrize("jit", [False, True])
def test_cem_update_refits_to_elites_with_noise_floor(jit):
    update = jax.jit(cem.cem_update, static_argnums=4) if jit else cem.cem_update
    population = jnp.array([[1.0, 2.0], [3.0, 6.0], [0.0, 0.0], [5.0, -4.0]])
    fitness = jnp.array([1.0, 3.0, 0.0, 2.0])
    mean, std = jnp.zeros(2), jnp.full(2, 2.0)
    # The 2 fittest are rows 1 (fitness 3) and 3 (fitness 2): [3, 6] and [5, -4].
    # Their mean is [4, 1]; their variance (ddof 0) is [(1 + 1) / 2, (25 + 25) / 2] = [1, 25].
    # No smoothing, noise floor 0.25: std = sqrt([1.25, 25.25]).
    new_mean, new_std, elites = update(population, fitness, mean, std, 2, 0.25, 1.0)
    np.testing.assert_array_equal(elites, [1, 3])
    np.testing.assert_allclose(new_mean, [4.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(new_std, np.sqrt([1.25, 25.25]), rtol=1e-6)
    # Smoothing 0.5 towards mean [0, 0] and variance 4: mean 0.5 [4, 1] = [2, 0.5];
    # variance 0.5 [1, 25] + 0.5 * 4 + 0.25 = [2.75, 14.75].
    new_mean, new_std, _ = update(population, fitness, mean, std, 2, 0.25, 0.5)
    np.testing.assert_allclose(new_mean, [2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(new_std, np.sqrt([2.75, 14.75]), rtol=1e-6)


def test_collapsed_elites_keep_the_noise_floor_and_ties_go_to_lower_index():
    # Identical elites have variance 0: the std is the noise floor sqrt(0.09) = 0.3.
    population = jnp.array([[1.0, -1.0], [1.0, -1.0], [7.0, 7.0]])
    _, std, elites = cem.cem_update(
        population, jnp.array([5.0, 5.0, 5.0]), jnp.zeros(2), jnp.ones(2), 2, 0.09, 1.0
    )
    np.testing.assert_array_equal(elites, [0, 1])  # all tied: the first two
    np.testing.assert_allclose(std, [0.3, 0.3], rtol=1e-6)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"population_size": 0}, r"CEMConfig.population_size=0 is not allowed; it must be an int"),
        ({"num_generations": 0}, r"CEMConfig.num_generations=0 is not allowed"),
        ({"episodes_per_candidate": 2.5}, r"CEMConfig.episodes_per_candidate=2.5 is not allowed"),
        ({"elite_fraction": 0.0}, r"CEMConfig.elite_fraction=0.0 is not allowed; .* \(0, 1\]"),
        ({"elite_fraction": 1.5}, r"CEMConfig.elite_fraction=1.5 is not allowed"),
        ({"hidden_sizes": (16, 0)}, r"CEMConfig.hidden_sizes=\(16, 0\) is not allowed"),
        ({"activation": "sigmoid"}, r"CEMConfig.activation='sigmoid' is not allowed; it must be"),
        ({"method": "es"}, r"CEMConfig.method='es' is not allowed; .*'cem', 'random_search'"),
    ],
)
def test_bad_config_is_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        cem.CEMConfig(**fields)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"init_std": 0.0}, r"CEMHParams.init_std=0.0 is not allowed; it must be in \(0, inf\)"),
        ({"extra_std": -0.1}, r"CEMHParams.extra_std=-0.1 is not allowed"),
        ({"extra_decay_fraction": 0.0}, r"CEMHParams.extra_decay_fraction=0.0 is not allowed"),
        ({"smoothing": 1.5}, r"CEMHParams.smoothing=1.5 is not allowed; it must be in \(0, 1\]"),
    ],
)
def test_bad_hparams_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        cem.CEMHParams(**fields).validate()


def test_elites_and_steps_per_generation():
    assert cem.CEMConfig(population_size=64, elite_fraction=0.2).num_elites == 13  # 12.8
    assert cem.CEMConfig(population_size=8, elite_fraction=0.01).num_elites == 1
    config = cem.CEMConfig(population_size=8, episodes_per_candidate=2, num_generations=3)
    assert config.num_updates == 3
    # Every candidate episode is stepped to the time limit: 500 on CartPole, 100 on Probe-4.
    assert config.steps_per_update(*envs.make("gymnax:CartPole-v1")) == 8 * 2 * 500
    assert config.steps_per_update(*envs.make("Probe-4")) == 8 * 2 * 100


def probe5():
    # One step per episode: a time limit of 1 cuts nothing and keeps evaluation short.
    return envs.make("Probe-5", max_episode_steps=1)


def test_random_search_keeps_initial_distribution_and_finds_probe5_policy():
    # A linear policy is right on Probe-5 iff the logit gap w obs + b has the obs's sign
    # at obs = +1 and -1; with 16 shared episodes per generation both signs are seen
    # (all 16 alike: probability 2^-15), so a score of 1 means the policy is right.
    env, params = probe5()
    config = cem.CEMConfig(
        population_size=16, num_generations=3, episodes_per_candidate=16, method="random_search"
    )
    hp = cem.CEMHParams(init_std=1.0)
    keys = jax.random.split(jax.random.key(0), 3)
    train = jax.jit(jax.vmap(cem.make_train(config, env, params), in_axes=(0, None)))
    state, metrics = train(keys, hp)
    np.testing.assert_allclose(metrics["std_mean"], 1.0)  # never refitted
    np.testing.assert_array_equal(state.best_return, 1.0)
    # Best-so-far never decreases, and is at least every generation's best.
    best = np.maximum.accumulate(metrics["best_return"], axis=1)
    np.testing.assert_array_equal(best[:, -1], state.best_return)

    def greedy(state):
        act = cem.make_policy(config, env, params, state)
        return evaluate(env, params, act, jax.random.key(7), 64, 1)

    np.testing.assert_array_equal(jax.jit(jax.vmap(greedy))(state), 1.0)


def test_hyperparameter_sweep_is_one_vmap_equal_to_single_runs():
    env, params = probe5()
    config = cem.CEMConfig(population_size=8, num_generations=3, episodes_per_candidate=4)
    train = cem.make_train(config, env, params)
    rows = [
        cem.CEMHParams(init_std=0.5, extra_std=0.0),
        cem.CEMHParams(init_std=1.0, extra_std=0.3, smoothing=0.5),
        cem.CEMHParams(init_std=2.0, extra_decay_fraction=2.0),
    ]
    stacked = jax.tree.map(lambda *v: jnp.array(v), *rows)
    key = jax.random.key(3)
    state, metrics = jax.jit(jax.vmap(train, in_axes=(None, 0)))(key, stacked)
    single = jax.jit(train)
    for i, hp in enumerate(rows):
        want = single(key, hp)
        got = jax.tree.map(lambda x, i=i: x[i], (state.params, state.std, metrics))
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        jax.tree.map(close, got, (want[0].params, want[0].std, want[1]))


def test_cem_finds_continuous_probe4_action():
    # Obs is 0, so the action is tanh(b); reward 1 - 4 (a - 0.5)^2 >= 0.99 needs
    # |a - 0.5| <= 0.05.
    env, params = envs.make("ContinuousProbe-4", max_episode_steps=1)
    config = cem.CEMConfig(population_size=32, num_generations=10)
    keys = jax.random.split(jax.random.key(0), 2)
    state, _ = jax.jit(jax.vmap(cem.make_train(config, env, params), in_axes=(0, None)))(
        keys, cem.CEMHParams()
    )
    obs = jnp.zeros((2, 1))
    actions = jax.vmap(lambda s: cem.make_policy(config, env, params, s)(None, obs))(state)
    np.testing.assert_allclose(actions, 0.5, atol=0.05)


def test_cem_solves_cartpole():
    # Defaults: 64 candidates, 13 elites, 20 generations, a linear policy, 1 episode per
    # candidate. Measured: 256 of 256 seeds (64 split from each of keys 0-3) reach 500 on
    # 32 greedy episodes; pure random search with the same budget, 61% of 128 seeds.
    config = cem.CEMConfig()
    env, params = envs.make("gymnax:CartPole-v1")
    eval_env, _ = envs.make("gymnax:CartPole-v1", autoreset=False)
    train = cem.make_train(config, env, params)

    def run(key):
        state, metrics = train(key, cem.CEMHParams())
        act = cem.make_policy(config, env, params, state)
        limit = episode_limit(eval_env, params)
        return evaluate(eval_env, params, act, jax.random.key(100), 32, limit).mean(), metrics

    greedy, metrics = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 4))
    assert metrics["episodes"].shape == (4, config.num_generations)
    assert (np.asarray(greedy) >= 475).all(), greedy
