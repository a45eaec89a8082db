"""The Gymnasium bridge: ``check_env`` without warnings for every built-in env,
NumPy rollouts, seeding, rendering, and refusing auto-resetting envs."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.gymnasium_bridge import GymnasiumEnv, to_gymnasium
from envs.registry import _BUILTINS


def _make_or_skip(name, **kwargs):
    """``envs.make``, skipping while the env's module is still being written."""
    module = _BUILTINS[name].module if name in _BUILTINS else None
    try:
        return envs.make(name, **kwargs)
    except ImportError as error:
        if module is not None and error.name == module:
            pytest.skip(f"{module} does not exist yet ({error})")
        raise


def _check_without_warnings(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert messages == [], "\n".join(messages)


@pytest.mark.parametrize("name", envs.builtin_names())
def test_check_env_passes_without_warnings(name):
    _check_without_warnings(to_gymnasium(*_make_or_skip(name, autoreset=False)))


def test_check_env_on_a_gymnax_env_with_discrete_observations():
    env = to_gymnasium(*envs.make("gymnax:FrozenLake-misc", autoreset=False))
    assert isinstance(env.observation_space, gymnasium.spaces.Discrete)
    _check_without_warnings(env)


def _episode(env, seed, actions):
    obs, info = env.reset(seed=seed)
    trajectory = [(obs, 0.0, False, False, info)]
    for action in actions:
        trajectory.append(env.step(action))
        if trajectory[-1][2] or trajectory[-1][3]:
            break
    return trajectory


def test_numpy_rollout_grid_world():
    env = to_gymnasium(*_make_or_skip("GridWorld-FourRooms", autoreset=False))
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 4, size=300)
    trajectory = _episode(env, 3, actions)
    for obs, reward, terminated, truncated, info in trajectory:
        assert isinstance(obs, np.ndarray) and obs.dtype == env.observation_space.dtype
        assert obs in env.observation_space
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert all(isinstance(v, np.ndarray) for v in info.values())
    _, _, terminated, truncated, info = trajectory[-1]
    assert terminated or truncated  # the 200-step limit at the latest
    assert info["episode_done"] and info["episode_length"] == len(trajectory) - 1
    # Same seed, same actions: same episode, also from a second bridge.
    again = _episode(to_gymnasium(*envs.make("GridWorld-FourRooms", autoreset=False)), 3, actions)
    assert len(again) == len(trajectory)
    for a, b in zip(trajectory, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]


def test_render_rgb_array():
    env = to_gymnasium(
        *_make_or_skip("GridWorld-FourRooms", autoreset=False), render_mode="rgb_array"
    )
    assert env.metadata["render_modes"] == ["rgb_array"]
    env.reset(seed=0)
    env.step(1)
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    with pytest.raises(ValueError, match="render_mode"):
        to_gymnasium(*envs.make("Probe-1", autoreset=False), render_mode="rgb_array")


def test_seeding():
    def resets(env, n, seed=None):
        first = env.reset(seed=seed)[0]
        return np.concatenate([first] + [env.reset()[0] for _ in range(n - 1)])

    def make(**kwargs):
        return to_gymnasium(*envs.make("Probe-2", autoreset=False), **kwargs)

    # The constructor's seed starts the chain of unseeded resets, like reset(seed=...).
    np.testing.assert_array_equal(resets(make(seed=5), 16), resets(make(), 16, seed=5))
    assert not np.array_equal(resets(make(), 16, seed=5), resets(make(), 16, seed=6))
    assert make().reset(seed=2**64 + 5)[0] in make().observation_space  # any int seeds


def test_max_episode_steps_adds_a_time_limit():
    env = to_gymnasium(*envs.make("Probe-1", raw=True), max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_refuses_auto_reset():
    with pytest.raises(ValueError, match=r"autoreset=False.*raw=True"):
        to_gymnasium(*envs.make("Probe-1"))
    with pytest.raises(ValueError, match="AutoReset"):
        GymnasiumEnv(envs.wrappers.AutoReset(envs.make("Probe-1", raw=True)[0]), None)


def test_envs_to_gymnasium_is_the_bridge():
    env = envs.to_gymnasium(*envs.make("Probe-4", autoreset=False), seed=1)
    assert isinstance(env, GymnasiumEnv) and env.spec.id == "Probe-4"
