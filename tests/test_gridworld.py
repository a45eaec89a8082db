"""GridWorld and RandomMaze: parsing, params, dynamics, tabular model, mazes, obs, rendering.

Each jitted function is compiled once per module (module-scoped fixtures) and
reused across tests and hypothesis examples; params are passed as arguments so
changing ``slip`` or costs does not recompile.
"""

import collections

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.gridworld import (
    LAYOUTS,
    MOVES,
    GridWorld,
    RandomMaze,
    parse_ascii_map,
    render_rollout,
    save_gif,
    to_ascii,
)

UP, RIGHT, DOWN, LEFT = range(4)
STEPS = 30


def rollout(env, params, key, actions):
    """Positions (T + 1, 2), rewards (T,), terminated (T,) of ``actions`` from reset."""
    state, _ = env.reset(key, params)

    def body(state, inputs):
        step_key, action = inputs
        state, ts = env.step(step_key, state, action, params)
        return state, (state.pos, ts.reward, ts.terminated)

    keys = jax.random.split(jax.random.fold_in(key, 1), actions.shape[0])
    _, (pos, reward, terminated) = jax.lax.scan(body, state, (keys, actions))
    return jnp.concatenate([state.pos[None], pos]), reward, terminated


def bfs(passable, source):
    """Distances (H, W) from ``source`` over 4-connected passable cells; -1 unreachable."""
    dist = np.full(passable.shape, -1)
    dist[tuple(source)] = 0
    queue = collections.deque([tuple(source)])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if passable[nr, nc] and dist[nr, nc] < 0:  # every map here has a wall border
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


@pytest.fixture(scope="module")
def rollouts():
    """Jitted ``rollout`` per built-in layout, compiled on first use."""
    cache = {}

    def get(layout):
        if layout not in cache:
            env = GridWorld(layout=layout)
            cache[layout] = (
                env,
                jax.jit(lambda key, actions, params: rollout(env, params, key, actions)),
            )
        return cache[layout]

    return get


# Parsing and params ----------------------------------------------------------


@pytest.mark.parametrize(
    "ascii_map, match",
    [
        ("#####\n#S.G#\n####", "row 2 has 4 characters"),
        (["#####", "#S.x#", "#####"], r"row 1, column 3: unknown character 'x'"),
        ("#####\n#..G#\n#####", "exactly one 'S'.*has 0"),
        ("#####\n#S.S#\n#G..#\n#####", r"exactly one 'S'.*has 2: \(row 1, column 1\)"),
        ("#####\n#S..#\n#####", "exactly one 'G'"),
        ("#####\n#S#G#\n#####", "not reachable"),
        ("#####\n#SLG#\n#####", "not reachable"),
        ("   \n", "empty"),
    ],
)
def test_bad_maps_raise_naming_the_problem(ascii_map, match):
    with pytest.raises(ValueError, match=match):
        GridWorld(ascii_map=ascii_map)


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError, match="layout='four-room'.*Did you mean four-rooms"):
        GridWorld(layout="four-room")
    with pytest.raises(ValueError, match="not both"):
        GridWorld(layout="empty-8x8", ascii_map="S.G")
    for size in (4, 3, 12):
        with pytest.raises(ValueError, match=f"size={size}"):
            RandomMaze(size=size)
    with pytest.raises(ValueError, match="start_goal"):
        RandomMaze(start_goal="edges")


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"slip": 1.5}, r"slip=1.5 .* \[0, 1\]"),
        ({"slip": -0.1}, "slip"),
        ({"step_cost": -1.0}, "step_cost"),
        ({"goal_reward": -0.5}, "goal_reward"),
        ({"lava_penalty": -1.0}, "lava_penalty"),
        ({"view_size": 4}, "view_size=4"),
        ({"view_size": 1}, "view_size=1"),
        ({"obs_mode": "rgb"}, "obs_mode='rgb'"),
        ({"slipp": 0.1}, "no field.*slipp"),
        ({"start": jnp.array([0, 0], jnp.int32)}, r"start=\[0, 0\] is on a wall"),
        ({"goal": jnp.array([3, 20], jnp.int32)}, r"goal\[1\] \(col\)"),
        ({"lava": jnp.zeros((3, 3), bool)}, "same"),
        ({"walls": jnp.zeros((13, 13), jnp.int32)}, "bool"),
    ],
)
def test_bad_params_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        GridWorld(layout="four-rooms").default_params(**overrides)


def test_bad_maze_params_raise():
    with pytest.raises(ValueError, match="MazeParams.slip"):
        RandomMaze().default_params(slip=2.0)
    with pytest.raises(ValueError, match="MazeParams.view_size"):
        RandomMaze().default_params(view_size=6)


def test_layouts_names_and_registry():
    empty, rooms = GridWorld(layout="empty-8x8"), GridWorld(layout="four-rooms")
    assert empty.layout.walls.shape == (8, 8)
    assert empty.layout.start.tolist() == [1, 1] and empty.layout.goal.tolist() == [6, 6]
    assert rooms.layout.walls.shape == (13, 13)
    assert (~rooms.layout.walls).sum() == 104  # Sutton et al. (1999): 104 cells
    assert empty.shortest_path_length(empty.default_params()) == 10
    assert rooms.shortest_path_length(rooms.default_params()) == 20
    for name in ("GridWorld-Empty-8x8", "GridWorld-FourRooms", "GridWorld-Maze"):
        env, _ = envs.make_raw(name)
        assert env.name == name and env.description
    custom = GridWorld(ascii_map=["S.L", "..G"])  # a list of rows, no border needed
    assert custom.name == "GridWorld-Custom-2x3"
    assert custom.layout.lava.tolist() == [[False, False, True], [False, False, False]]
    assert set(LAYOUTS) >= {"empty-8x8", "four-rooms"}


def test_reset_and_step_pytrees_are_stable():
    for env in (GridWorld(layout="four-rooms"), RandomMaze()):
        params = env.default_params(obs_mode="egocentric")
        key = jax.random.key(0)
        state0, ts0 = jax.eval_shape(env.reset, key, params)
        state1, ts1 = jax.eval_shape(env.step, key, state0, jnp.int32(1), params)
        assert jax.tree.map(lambda x: (x.shape, x.dtype), (state0, ts0)) == jax.tree.map(
            lambda x: (x.shape, x.dtype), (state1, ts1)
        )
        assert ts0.info == {}


# Dynamics --------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    actions=st.lists(st.integers(-3, 7), min_size=STEPS, max_size=STEPS),
    seed=st.integers(0, 2**31 - 1),
    slip=st.sampled_from([0.0, 0.5]),
)
def test_walls_block_and_agent_stays_on_free_cells(rollouts, actions, seed, slip):
    env, run = rollouts("four-rooms")
    params = env.default_params(slip=slip)
    pos, reward, terminated = jax.device_get(
        run(jax.random.key(seed), jnp.array(actions, jnp.int32), params)
    )
    walls, goal = env.layout.walls, env.layout.goal
    assert ((pos >= 0) & (pos < 13)).all()
    assert not walls[pos[:, 0], pos[:, 1]].any()
    assert (np.abs(np.diff(pos, axis=0)).sum(axis=1) <= 1).all()
    for t, action in enumerate(actions):
        if (pos[t] == goal).all():  # absorbing after the goal
            np.testing.assert_array_equal(pos[t + 1], pos[t])
            assert reward[t] == 0 and terminated[t]
        elif slip == 0.0:  # out-of-range actions are clipped to [0, 3]
            target = pos[t] + MOVES[np.clip(action, 0, 3)]
            expected = pos[t] if walls[tuple(target)] else target
            np.testing.assert_array_equal(pos[t + 1], expected)


def test_slip_zero_is_deterministic_and_slip_is_not(rollouts):
    env, run = rollouts("four-rooms")
    actions = jnp.array([RIGHT, DOWN] * (STEPS // 2), jnp.int32)
    runs = {
        slip: [run(jax.random.key(k), actions, env.default_params(slip=slip))[0] for k in (1, 2)]
        for slip in (0.0, 0.5)
    }
    np.testing.assert_array_equal(*runs[0.0])
    assert not np.array_equal(*runs[0.5])


def test_goal_gives_reward_and_termination(rollouts):
    env, run = rollouts("empty-8x8")
    params = env.default_params(step_cost=0.05, goal_reward=2.0)
    # Out-of-range actions are clipped: 9 -> 3 (left) is a no-op at the start.
    actions = jnp.array([9] + [RIGHT] * 5 + [-4] + [DOWN] * 5 + [UP] * 18, jnp.int32)
    pos, reward, terminated = run(jax.random.key(0), actions, params)
    assert pos[1].tolist() == [1, 1] and pos[7].tolist() == [1, 6]  # -4 -> 0 (up): wall
    assert pos[12].tolist() == [6, 6]
    np.testing.assert_allclose(reward[:11], -0.05)
    np.testing.assert_allclose(reward[11], 2.0 - 0.05)
    assert terminated.tolist() == [False] * 11 + [True] * 19
    np.testing.assert_array_equal(reward[12:], 0.0)  # absorbing: no further reward


def test_lava_terminates_with_penalty(rollouts):
    env, run = rollouts("lava-gap-7x7")
    params = env.default_params(step_cost=0.1, lava_penalty=3.0)
    actions = jnp.array([RIGHT] * STEPS, jnp.int32)
    pos, reward, terminated = run(jax.random.key(0), actions, params)
    assert pos[2].tolist() == [1, 3]
    np.testing.assert_allclose(reward[:2], [-0.1, -3.1])
    assert terminated[1] and not terminated[0]


def test_vmap_over_params_with_different_layouts():
    env = GridWorld(layout="empty-8x8")
    blocked = LAYOUTS["empty-8x8"].replace("#S.....#", "#S#....#")
    other = GridWorld(ascii_map=blocked).default_params(slip=0.0)
    params = jax.tree.map(lambda a, b: jnp.stack([a, b]), env.default_params(), other)

    def one(params):
        state, _ = env.reset(jax.random.key(0), params)
        return env.step(jax.random.key(1), state, RIGHT, params)[0].pos

    assert jax.jit(jax.vmap(one))(params).tolist() == [[1, 2], [1, 1]]


# Tabular model -----------------------------------------------------------------


def test_tabular_model_structure_and_index_mapping():
    env = GridWorld(layout="lava-gap-7x7")
    params = env.default_params(slip=0.3)
    model = env.tabular_model(params)
    num_states = int((~env.layout.walls).sum())
    assert model.P.shape == (num_states, 4, num_states) and model.P.dtype == jnp.float32
    assert model.R.shape == (num_states, 4) and model.R.dtype == jnp.float32
    np.testing.assert_allclose(model.P.sum(-1), 1.0, atol=1e-6)
    terminal = np.flatnonzero(model.terminal)
    assert len(terminal) == 1 + env.layout.lava.sum()
    np.testing.assert_array_equal(model.P[terminal, :, terminal], 1.0)
    np.testing.assert_array_equal(model.R[terminal], 0.0)
    state, _ = env.reset(jax.random.key(0), params)
    assert env.state_index(state, params) == model.start_index
    for index in (0, 7, num_states - 1):
        position = env.index_to_position(index, params)
        np.testing.assert_array_equal(position, model.positions[index])
        assert env.state_index(state.replace(pos=position), params) == index
    with pytest.raises(ValueError, match="no tabular model"):
        RandomMaze().tabular_model(RandomMaze().default_params())


def test_tabular_model_matches_sampled_steps():
    env = GridWorld(layout="lava-gap-7x7")
    params = env.default_params(slip=0.3, step_cost=0.1, lava_penalty=2.0)
    model = jax.device_get(env.tabular_model(params))
    # Next to a wall, next to lava, next to the goal, open floor, and on lava.
    cells = jnp.array([[1, 1], [1, 2], [4, 5], [3, 3], [4, 3]], jnp.int32)
    actions = jnp.array([UP, RIGHT, DOWN, LEFT, RIGHT], jnp.int32)
    samples = 8000

    def sample(cell, action, key):
        state, _ = env.reset(key, params)
        state = state.replace(pos=cell)
        keys = jax.random.split(key, samples)
        next_state, ts = jax.vmap(env.step, (0, None, None, None))(keys, state, action, params)
        next_index = jax.vmap(env.state_index, (0, None))(next_state, params)
        return env.state_index(state, params), next_index, ts.reward

    keys = jax.random.split(jax.random.key(0), len(actions))
    index, next_index, reward = jax.device_get(jax.jit(jax.vmap(sample))(cells, actions, keys))
    for s, a, nxt, r in zip(index, np.asarray(actions), next_index, reward, strict=True):
        freq = np.bincount(nxt, minlength=model.P.shape[0]) / samples
        p = model.P[s, a]
        np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / samples) + 1e-3)
        assert abs(r.mean() - model.R[s, a]) <= 5 * r.std() / np.sqrt(samples) + 1e-5


def test_value_iteration_reaches_goal_in_shortest_path_steps():
    # Identity: slip 0, reward 1 at the goal and no step cost give V(start) = gamma^(d - 1).
    env = GridWorld(layout="four-rooms")
    params = env.default_params(step_cost=0.0)
    model = jax.device_get(env.tabular_model(params))
    gamma, values = 0.9, np.zeros(model.P.shape[0])
    for _ in range(60):
        values = (model.R + gamma * model.P @ values).max(axis=1)
    distance = env.shortest_path_length(params)
    np.testing.assert_allclose(values[model.start_index], gamma ** (distance - 1), rtol=1e-5)


# Random mazes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mazes():
    env = RandomMaze()
    params = env.default_params()
    keys = jax.random.split(jax.random.key(0), 64)
    states, ts = jax.jit(jax.vmap(env.reset, (0, None)))(keys, params)
    return env, params, jax.device_get(states), jax.device_get(ts)


def _check_perfect_maze(walls, start, goal):
    free = ~walls
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    assert free[tuple(start)] and free[tuple(goal)] and tuple(start) != tuple(goal)
    dist = bfs(free, start)
    assert dist[tuple(goal)] > 0, "goal unreachable"
    assert (dist[free] >= 0).all(), "maze not connected"
    edges = (free[1:] & free[:-1]).sum() + (free[:, 1:] & free[:, :-1]).sum()
    assert edges == free.sum() - 1, "maze has a loop"


def test_every_random_maze_is_perfect_and_keys_differ(mazes):
    env, _, states, _ = mazes
    for walls, start, goal in zip(states.walls, states.start, states.goal, strict=True):
        _check_perfect_maze(walls, start, goal)
        assert (np.abs(goal - start) == env.size - 3).all()  # opposite corners
    assert len({w.tobytes() for w in states.walls}) == 64
    # The sidewinder's straight corridor lands on every side thanks to the symmetries.
    free = ~states.walls
    corridor_sides = {
        "top": free[:, 1, 1:-1].all(-1),
        "bottom": free[:, -2, 1:-1].all(-1),
        "left": free[:, 1:-1, 1].all(-1),
        "right": free[:, 1:-1, -2].all(-1),
    }
    assert all(has.any() for has in corridor_sides.values()), corridor_sides


def test_random_start_goal_mode_and_freezing_a_maze():
    env = RandomMaze(size=9, start_goal="random")
    keys = jax.random.split(jax.random.key(1), 32)
    states, _ = jax.device_get(jax.jit(jax.vmap(env.reset, (0, None)))(keys, env.default_params()))
    assert len({(tuple(s), tuple(g)) for s, g in zip(states.start, states.goal, strict=True)}) > 16
    for walls, start, goal in zip(states.walls, states.start, states.goal, strict=True):
        _check_perfect_maze(walls, start, goal)
    frozen = GridWorld(ascii_map=to_ascii(states.walls[0], states.start[0], states.goal[0]))
    distance = bfs(~states.walls[0], states.start[0])[tuple(states.goal[0])]
    assert frozen.shortest_path_length(frozen.default_params()) == distance


def test_random_maze_walls_block_movement(mazes):
    env, params, _, _ = mazes

    def one(key):
        state, _ = env.reset(key, params)
        actions = jax.random.randint(key, (STEPS,), 0, 4)
        keys = jax.random.split(key, STEPS)

        def body(state, inputs):
            step_key, action = inputs
            state, _ = env.step(step_key, state, action, params)
            return state, state

        return state, jax.lax.scan(body, state, (keys, actions))[1]

    first, traj = jax.device_get(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(2), 16)))
    np.testing.assert_array_equal(traj.walls, np.repeat(first.walls[:, None], STEPS, axis=1))
    rows, cols = traj.pos[..., 0], traj.pos[..., 1]
    on_wall = np.take_along_axis(
        traj.walls.reshape(16, STEPS, -1), (rows * 13 + cols)[..., None], -1
    )
    assert not on_wall.any()
    assert (np.abs(np.diff(traj.pos, axis=1)).sum(-1) <= 1).all()


# Observations and rendering ---------------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["onehot", "egocentric", "image"])
@pytest.mark.parametrize("maze", [False, True], ids=["four-rooms", "maze"])
def test_observation_modes(obs_mode, maze):
    env = RandomMaze() if maze else GridWorld(layout="four-rooms")
    params = env.default_params(obs_mode=obs_mode, view_size=7, slip=0.5)
    space = env.observation_space(params)
    assert space.dtype == jnp.float32 and (space.low == 0).all() and (space.high == 1).all()
    expected_shape = {"onehot": (169,), "egocentric": (7, 7, 3), "image": (13, 13, 4)}[obs_mode]
    assert space.shape == expected_shape

    def run(key):
        state, ts = env.reset(key, params)
        obs = [ts.obs]
        for action in (RIGHT, DOWN, DOWN):
            key, step_key = jax.random.split(key)
            state, ts = env.step(step_key, state, action, params)
            obs.append(ts.obs)
        walls = state.walls if maze else params.walls
        return state.pos, walls, jnp.stack(obs), jax.vmap(space.contains)(jnp.stack(obs))

    pos, walls, obs, inside = jax.device_get(jax.jit(run)(jax.random.key(3)))
    assert inside.all() and obs.dtype == np.float32
    last = obs[-1]
    if obs_mode == "onehot":
        assert last.argmax() == pos[0] * 13 + pos[1] and last.sum() == 1
    elif obs_mode == "image":
        np.testing.assert_array_equal(last[..., 0], walls)
        assert last[..., 1].sum() == 1 and last[pos[0], pos[1], 1] == 1
        assert last[..., 2].sum() == 1
    else:
        assert last[3, 3, 0] == 0  # the agent's own cell is free
        padded = np.pad(walls, 3, constant_values=True)
        np.testing.assert_array_equal(
            last[..., 0], padded[pos[0] : pos[0] + 7, pos[1] : pos[1] + 7]
        )


def test_egocentric_view_outside_counts_as_wall_and_shows_goal_and_lava():
    env = GridWorld(layout="lava-gap-7x7")
    params = env.default_params(obs_mode="egocentric", view_size=5)
    state, ts = env.reset(jax.random.key(0), params)
    obs = np.asarray(ts.obs)  # agent at (1, 1): window rows/cols -1..3
    np.testing.assert_array_equal(obs[:2, :, 0], 1)  # outside, then the border row
    np.testing.assert_array_equal(obs[:, :2, 0], 1)
    assert obs[2, 4, 2] == 1 and obs[2, 4, 0] == 0  # lava at (1, 3)
    assert obs[..., 1].sum() == 0
    _, ts = env.step(jax.random.key(0), state.replace(pos=jnp.array([4, 4])), UP, params)
    assert np.asarray(ts.obs)[4, 3, 1] == 1  # goal at (5, 5) from (3, 4)


def test_render_shapes_and_save_gif(tmp_path):
    env = GridWorld(layout="empty-8x8")
    params = env.default_params()

    def go_to_goal(key, obs):  # right along the top row, then down
        return jnp.where(jnp.argmax(obs) % 8 < 6, RIGHT, DOWN)

    frames = jax.jit(lambda key: render_rollout(env, key, params, 12, go_to_goal))(
        jax.random.key(0)
    )
    assert frames.shape == (13, 128, 128, 3) and frames.dtype == jnp.uint8
    np.testing.assert_array_equal(frames[-1], frames[-2])  # frozen after termination
    np.testing.assert_array_equal(frames[0, 24, 24], [215, 40, 40])  # agent at (1, 1)
    np.testing.assert_array_equal(frames[0, 8, 8], [70, 70, 70])  # wall at (0, 0)
    np.testing.assert_array_equal(frames[0, 104, 104], [60, 180, 75])  # goal at (6, 6)
    states, _ = jax.vmap(env.reset, (0, None))(jax.random.split(jax.random.key(0), 2), params)
    assert jax.jit(jax.vmap(env.render, (0, None)))(states, params).shape == (2, 128, 128, 3)
    maze = RandomMaze(size=9)
    maze_params = maze.default_params()
    image = jax.eval_shape(
        lambda key: maze.render(maze.reset(key, maze_params)[0], maze_params, cell_size=8),
        jax.random.key(0),
    )
    assert image.shape == (72, 72, 3) and image.dtype == jnp.uint8

    path = tmp_path / "episode.gif"
    save_gif(frames[:11], path, fps=5)  # 11 distinct frames
    read = iio.imread(path, index=None)
    assert read.shape[:3] == (11, 128, 128)
    np.testing.assert_array_equal(read[3, ..., :3], frames[3])
    save_gif(list(frames[:3]), tmp_path / "list.gif")
    assert iio.imread(tmp_path / "list.gif", index=None).shape[0] == 3
    with pytest.raises(ValueError, match="uint8"):
        save_gif(np.zeros((2, 8, 8, 3), np.float32), tmp_path / "bad.gif")


def test_parse_ascii_map_round_trip():
    layout = parse_ascii_map(LAYOUTS["lava-gap-7x7"])
    text = to_ascii(layout.walls, layout.start, layout.goal, layout.lava)
    assert text == LAYOUTS["lava-gap-7x7"].strip()


def test_sidewinder_opens_each_run_north_at_the_picked_offset():
    from envs.gridworld import _sidewinder

    east = jnp.array([[0, 0, 0, 0], [1, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
    pick = jnp.full((4, 4), 3 << 14, jnp.uint32)  # 0.75 of 2**16: offset floor(0.75 * length)
    open_ = ~np.asarray(_sidewinder(east, pick))
    assert open_[1, 1:-1].all()  # the top row is one corridor
    # Row 1 has runs [0, 1, 2] (opens at offset 2) and [3] (offset 0); rows 2-3 as listed.
    np.testing.assert_array_equal(np.flatnonzero(open_[2]), [5, 7])
    np.testing.assert_array_equal(np.flatnonzero(open_[4]), [1, 3, 5, 7])
    np.testing.assert_array_equal(np.flatnonzero(open_[6]), [7])  # one run of 4: offset 3
