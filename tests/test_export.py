"""Policy export: an exported and reloaded policy acts exactly like the agent's own
``make_policy`` (symbolic batch sizes, deterministic and sampled), its spec
round-trips, bad input is refused with a message, a failed export leaves nothing
behind, and loading and acting need no training code (checked in a subprocess
that cannot import it)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
import jaxrl
from jaxrl import export
from jaxrl.agents import dqn, ppo, sac

REPO = Path(__file__).resolve().parents[1]
REPLAY = dict(num_envs=2, total_steps=64, buffer_size=64, minibatch_size=8, learning_starts=8)
CASES = {
    # name: (agent, config, hyperparameters, env name)
    "ppo-discrete": (
        ppo.AGENT,
        ppo.PPOConfig(num_envs=2, rollout_len=8, total_steps=16, normalize_obs=True),
        ppo.PPOHParams(),
        "gymnax:CartPole-v1",
    ),
    "ppo-continuous": (
        ppo.AGENT,
        ppo.PPOConfig(num_envs=2, rollout_len=8, total_steps=16, hidden_sizes=(32, 32)),
        ppo.PPOHParams(),
        "gymnax:Pendulum-v1",
    ),
    "dqn": (
        dqn.AGENT,
        dqn.DQNConfig(**REPLAY, hidden_sizes=(32, 32)),
        dqn.DQNHParams(),
        "gymnax:CartPole-v1",
    ),
    "sac": (
        sac.AGENT,
        sac.SACConfig(**REPLAY, hidden_sizes=(32, 32)),
        sac.SACHParams(),
        "gymnax:Pendulum-v1",
    ),
}


def random_obs(space, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniform observations of a Box, its infinite or huge (CartPole's float32
    max) sides cut to +-10 so that the draws stay finite."""
    rng = np.random.default_rng(seed)
    low, high = np.maximum(space.low, -10.0), np.minimum(space.high, 10.0)
    return rng.uniform(low, high, (n, *space.shape)).astype(space.dtype)


class Case:
    """One agent's state (initial parameters plus noise), exported twice."""

    def __init__(self, name, tmp_path_factory):
        agent, config, hparams, env_name = CASES[name]
        self.agent, self.config, self.env_name = agent, config, env_name
        self.env, self.env_params = envs.make(env_name)
        state = jax.jit(agent.make_train(config, self.env, self.env_params).init)(
            jax.random.key(0), hparams
        )
        # Initial heads are scaled down to near-ties between actions; noise makes the
        # actions differ across observations and keeps exact comparisons meaningful.
        leaves, tree = jax.tree.flatten(state.params)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        noisy = [
            x + 0.5 * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, keys, strict=True)
        ]
        self.state = state._replace(params=jax.tree.unflatten(tree, noisy))
        self.obs_space = self.env.observation_space(self.env_params)
        self.action_space = self.env.action_space(self.env_params)
        self.paths, self.acts = {}, {}
        for deterministic in (True, False):
            path = tmp_path_factory.mktemp(name) / f"policy-{deterministic}"
            export.export_agent(
                agent, config, self.env, self.env_params, self.state, path, env_name,
                deterministic, metadata={"note": "test"},
            )  # fmt: skip
            self.paths[deterministic] = path
            self.acts[deterministic] = jax.jit(
                agent.make_policy(config, self.env, self.env_params, self.state, deterministic)
            )


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """``name -> Case``, each built once for the module."""
    built = {}

    def get(name: str) -> Case:
        if name not in built:
            built[name] = Case(name, tmp_path_factory)
        return built[name]

    return get


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, cases):
    return cases(request.param)


@pytest.fixture(scope="module")
def cartpole(cases):
    return cases("ppo-discrete")


@pytest.mark.parametrize("deterministic", [True, False])
def test_loaded_policy_acts_like_make_policy(exported, deterministic):
    policy = export.load_policy(exported.paths[deterministic])
    obs = random_obs(exported.obs_space, 7)
    discrete = isinstance(exported.action_space, envs.spaces.Discrete)
    for batch in (obs[:1], obs):  # one compiled module, two batch sizes
        for seed in (0, 3):
            want = np.asarray(exported.acts[deterministic](jax.random.key(seed), batch))
            got = policy(batch, seed=seed)
            assert got.shape == want.shape == (len(batch), *exported.action_space.shape)
            if discrete:
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # One observation without a batch axis: the action of a batch of one.
    single = policy(obs[2], seed=3)
    np.testing.assert_array_equal(single, policy(obs[2:3], seed=3)[0])
    assert single.shape == exported.action_space.shape
    if not deterministic and discrete:
        # Sampling uses the key: over many observations two seeds differ somewhere.
        many = random_obs(exported.obs_space, 64, seed=1)
        assert np.any(policy(many, seed=1) != policy(many, seed=2))


def test_spec_round_trips(cartpole):
    policy = export.load_policy(cartpole.paths[True])
    spec = policy.spec
    assert spec == json.loads((cartpole.paths[True] / "spec.json").read_text())
    assert spec["algo"] == "ppo" and spec["env"] == "gymnax:CartPole-v1"
    assert spec["deterministic"] is True
    assert spec["jax_version"] == jax.__version__ and spec["jaxrl_version"] == jaxrl.__version__
    assert "cpu" in spec["platforms"]
    assert spec["config"]["normalize_obs"] is True and spec["metadata"] == {"note": "test"}
    obs = spec["observation"]
    assert (obs["kind"], tuple(obs["shape"]), obs["dtype"]) == ("box", (4,), "float32")
    low, high = export.space_bounds(obs)
    np.testing.assert_array_equal(low, cartpole.obs_space.low)  # float32 max survives JSON
    np.testing.assert_array_equal(high, cartpole.obs_space.high)
    assert spec["action"] == {"kind": "discrete", "n": 2, "shape": [], "dtype": "int32"}
    assert policy.obs_shape == (4,) and policy.obs_dtype == np.float32
    assert sorted(os.listdir(cartpole.paths[True])) == ["policy.jaxexport", "spec.json"]


def test_box_bounds_round_trip_with_infinities():
    space = envs.spaces.Box(np.array([-np.inf, 0.0, -1.0]), np.array([np.inf, 2.0, 1.0]), (3,))
    spec = json.loads(json.dumps(export.space_spec(space), allow_nan=False))
    assert spec["low"] == [None, 0.0, -1.0] and spec["high"] == [None, 2.0, 1.0]
    low, high = export.space_bounds(spec)
    np.testing.assert_array_equal(low, space.low)
    np.testing.assert_array_equal(high, space.high)
    uniform = export.space_spec(envs.spaces.Box(-2.0, 2.0, (2, 3)))
    assert (uniform["low"], uniform["high"]) == (-2.0, 2.0)
    assert export.space_bounds(uniform)[0].shape == (2, 3)


@pytest.mark.parametrize(
    "obs, match",
    [
        (np.zeros(3), r"shape \(4,\) or a batch of shape \(B, 4\); got shape \(3,\)"),
        (np.zeros((2, 5)), r"got shape \(2, 5\)"),
        (np.zeros((2, 2, 4)), r"got shape \(2, 2, 4\)"),
        (np.zeros((0, 4)), "empty batch"),
        ([[0.0, 1.0], [1.0]], "ragged"),
        (["a", "b", "c", "d"], "float32 values; got <U1"),
        ([True, False, True, False], "got bool"),
        ([0.0, np.nan, 0.0, 0.0], "finite"),
        ([0.0, np.inf, 0.0, 0.0], "finite"),
    ],
)
def test_bad_observations_raise(cartpole, obs, match):
    policy = export.load_policy(cartpole.paths[True])
    with pytest.raises(ValueError, match=match):
        policy(obs)


def test_keys_and_seeds(cartpole):
    policy = export.load_policy(cartpole.paths[False])
    obs = random_obs(cartpole.obs_space, 16)
    key = jax.random.key(9)
    want = policy(obs, seed=9)
    np.testing.assert_array_equal(policy(obs, key=key), want)
    np.testing.assert_array_equal(policy(obs, key=jax.random.key_data(key)), want)
    np.testing.assert_array_equal(policy(obs.tolist()), policy(obs, seed=0))  # lists; seed 0
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match="seed must be an int"):
            policy(obs, seed=seed)
    with pytest.raises(ValueError, match="not both"):
        policy(obs, key=key, seed=1)
    with pytest.raises(ValueError, match=r"uint32 key data of shape \(2,\)"):
        policy(obs, key=np.zeros(3, np.uint32))


def test_loading_needs_no_training_code(cartpole, tmp_path):
    """A fresh interpreter that cannot import the agents, flax, optax or envs loads
    the artifact and reproduces the sampled actions of the training process."""
    obs = random_obs(cartpole.obs_space, 7)
    want = np.asarray(cartpole.acts[False](jax.random.key(5), obs))
    np.savez(tmp_path / "data.npz", obs=obs, want=want)
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        BLOCKED = ("jaxrl.agents", "flax", "optax", "chex", "flashbax", "gymnax", "envs")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError(f"{name} is blocked in this test")

        sys.meta_path.insert(0, Block())
        import numpy as np
        from jaxrl.export import load_policy

        data = np.load(sys.argv[2])
        policy = load_policy(sys.argv[1])
        np.testing.assert_array_equal(policy(data["obs"], seed=5), data["want"])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or
                        m.startswith("jaxrl.agents"))
        assert not loaded, loaded
        print("acted without training code")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(cartpole.paths[False]), str(tmp_path / "data.npz")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "acted without training code" in result.stdout


def discrete_spaces():
    return envs.spaces.Box(-1.0, 1.0, (4,)), envs.spaces.Discrete(2)


def test_failed_export_leaves_nothing(tmp_path):
    obs_space, action_space = discrete_spaces()
    wrong_shape = lambda key, obs: jnp.zeros((obs.shape[0], 2), jnp.int32)
    with pytest.raises(ValueError, match=r"shape \(b, 2\).*needs \(b\)"):
        export.export_policy(wrong_shape, obs_space, action_space, tmp_path / "p")
    float_actions = lambda key, obs: obs[:, 0]
    with pytest.raises(ValueError, match="float32 actions for a Discrete"):
        export.export_policy(float_actions, obs_space, action_space, tmp_path / "p")
    recurrent = lambda key, obs, first, rnn: (obs[:, 0], rnn)
    with pytest.raises(ValueError, match="recurrent"):
        export.export_policy(recurrent, obs_space, action_space, tmp_path / "p")
    act = lambda key, obs: jnp.argmax(obs[:, :2], axis=-1)
    with pytest.raises(ValueError, match="JSON"):
        export.export_policy(act, obs_space, action_space, tmp_path / "p", metadata={"x": {1j}})
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_only_artifacts(tmp_path, monkeypatch):
    obs_space, action_space = discrete_spaces()
    first = lambda key, obs: jnp.zeros(obs.shape[0], jnp.int32)
    second = lambda key, obs: jnp.ones(obs.shape[0], jnp.int32)
    path = export.export_policy(first, obs_space, action_space, tmp_path / "p", algo="first")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.export_policy(second, obs_space, action_space, path)
    # A write that fails at the last step keeps the old artifact and no temporaries.
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(src).endswith(".tmp"):  # moving the new artifact into place
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        export.export_policy(second, obs_space, action_space, path, overwrite=True)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["p"] and export.load_policy(path).spec["algo"] == "first"
    export.export_policy(second, obs_space, action_space, path, overwrite=True, algo="second")
    assert os.listdir(tmp_path) == ["p"]
    assert export.load_policy(path)(np.zeros(4)) == 1
    other = tmp_path / "not-an-artifact"
    other.mkdir()
    with pytest.raises(FileExistsError, match="not a policy artifact"):
        export.export_policy(second, obs_space, action_space, other, overwrite=True)


def test_recurrent_agents_are_refused(tmp_path):
    env, env_params = envs.make("gymnax:CartPole-v1")
    config = ppo.PPOConfig(num_envs=2, rollout_len=8, total_steps=16, num_minibatches=1, gru_size=8)
    with pytest.raises(ValueError, match="gru_size=8 is recurrent"):
        export.export_agent(ppo.AGENT, config, env, env_params, None, tmp_path / "p", "CartPole")


def test_corrupt_or_foreign_artifacts_are_refused(cartpole, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a policy artifact"):
        export.load_policy(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    spec = json.loads((cartpole.paths[True] / "spec.json").read_text())
    (copy / "spec.json").write_text(json.dumps(spec))
    (copy / "policy.jaxexport").write_bytes(b"not a module")
    with pytest.raises(ValueError, match="sha256"):
        export.load_policy(copy)
    (copy / "spec.json").write_text(json.dumps(spec | {"format_version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        export.load_policy(copy)
