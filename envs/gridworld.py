"""Grid worlds from ASCII maps, and random perfect mazes redrawn every reset.

``GridWorld`` is a 4-action grid navigation task on a fixed layout; ``RandomMaze``
draws a fresh maze from the reset key for generalisation research. Both are
pure, unbatched and jittable; batch with ``jax.vmap``.

Maps are ASCII: ``#`` wall, ``S`` start, ``G`` goal, ``L`` lava, ``.`` floor.
Built-in layouts (``GridWorld(layout=...)``):

- ``"empty-8x8"``: MiniGrid's Empty-8x8 (Chevalier-Boisvert et al., 2018), 8x8
  including the border; start at the top-left, goal at the bottom-right corner
  of the interior.
- ``"four-rooms"``: Sutton, Precup & Singh (1999), 13x13 with an 11x11
  interior of four rooms joined by four one-cell doorways (104 cells); start in
  the top-left corner, goal in the bottom-right corner.
- ``"lava-gap-7x7"``: after MiniGrid's LavaGapS7: a lava column with one gap.

Dynamics: actions 0-3 move up, right, down, left; out-of-range actions are
clipped to [0, 3]. With probability ``slip`` the action is replaced by a
uniformly random one of the four (which may be the intended one). Moving into a
wall or off the grid leaves the agent in place. Each step costs ``step_cost``;
entering the goal adds ``goal_reward``, entering lava subtracts
``lava_penalty``; both terminate. Stepping from a goal or lava cell (only
possible without auto-reset) leaves the agent there with reward 0, which is
what ``tabular_model`` reports.

Deviations from MiniGrid: no agent heading, so actions are absolute moves and
the egocentric view is aligned with the grid, not rotated; the goal reward is
constant rather than decaying with the episode length (use ``step_cost``).

Hand-written because no maintained JAX grid world fits this API: minigrid is
NumPy/Gymnasium, gymnax's FourRooms has no ASCII maps, slip or observation
modes, and neither gives a tabular model for exact planning.
"""

from __future__ import annotations

import collections
import difflib
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs._validation import apply_overrides, check_range, concrete
from envs.core import Environment, restart, transition
from envs.spaces import Box, Discrete

EMPTY_8X8 = """
########
#S.....#
#......#
#......#
#......#
#......#
#.....G#
########
"""

FOUR_ROOMS = """
#############
#S....#.....#
#.....#.....#
#...........#
#.....#.....#
#.....#.....#
##.####.....#
#.....###.###
#.....#.....#
#.....#.....#
#...........#
#.....#....G#
#############
"""

LAVA_GAP_7X7 = """
#######
#S.L..#
#..L..#
#.....#
#..L..#
#..L.G#
#######
"""

LAYOUTS = {"empty-8x8": EMPTY_8X8, "four-rooms": FOUR_ROOMS, "lava-gap-7x7": LAVA_GAP_7X7}
_LAYOUT_NAMES = {
    "empty-8x8": "GridWorld-Empty-8x8",
    "four-rooms": "GridWorld-FourRooms",
    "lava-gap-7x7": "GridWorld-LavaGap-7x7",
}
_CHARS = "#SGL."
OBS_MODES = ("onehot", "egocentric", "image")
# Row/column offsets of the actions up, right, down, left.
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)
_COLORS = np.array([[240, 240, 240], [70, 70, 70], [60, 180, 75], [235, 110, 30]], np.uint8)
_AGENT_COLOR = np.array([[[215, 40, 40]]], np.uint8)


class Layout(NamedTuple):
    """A parsed map: ``walls``, ``lava`` (H, W) bool; ``start``, ``goal`` (2,) int32 (row, col)."""

    walls: np.ndarray
    lava: np.ndarray
    start: np.ndarray
    goal: np.ndarray


def parse_ascii_map(ascii_map: str | Sequence[str]) -> Layout:
    """Parse a map (one string with a row per line, or a list of rows).

    Surrounding whitespace of each row and blank lines at either end are
    ignored. Raises ``ValueError`` naming the problem (rows and columns are
    0-based) for uneven rows, unknown characters, not exactly one ``S`` or ``G``,
    or a goal unreachable from the start without crossing lava.
    """
    lines = ascii_map.strip().splitlines() if isinstance(ascii_map, str) else list(ascii_map)
    rows = [str(line).strip() for line in lines]
    if not rows or not rows[0]:
        raise ValueError("ascii_map is empty; it needs at least one row with an S and a G")
    for r, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(
                f"ascii_map row {r} has {len(row)} characters but row 0 has {len(rows[0])}; "
                "all rows must have the same length"
            )
        for c, char in enumerate(row):
            if char not in _CHARS:
                raise ValueError(
                    f"ascii_map row {r}, column {c}: unknown character {char!r}; "
                    "allowed: '#' wall, 'S' start, 'G' goal, 'L' lava, '.' floor"
                )
    grid = np.array([list(row) for row in rows])
    ends = {}
    for char, what in (("S", "start"), ("G", "goal")):
        found = np.argwhere(grid == char)
        if len(found) != 1:
            where = ", ".join(f"(row {r}, column {c})" for r, c in found)
            raise ValueError(
                f"ascii_map needs exactly one {char!r} ({what}) but has {len(found)}"
                + (f": {where}" if where else "")
            )
        ends[what] = found[0].astype(np.int32)
    walls, lava = grid == "#", grid == "L"
    if _bfs(~walls & ~lava, ends["start"])[tuple(ends["goal"])] < 0:
        raise ValueError("ascii_map: the goal is not reachable from the start without lava")
    return Layout(walls, lava, ends["start"], ends["goal"])


def to_ascii(walls: Any, start: Any, goal: Any, lava: Any = None) -> str:
    """The ASCII map of a layout (e.g. a drawn maze, to freeze it into a ``GridWorld``)."""
    walls = np.asarray(walls, bool)
    grid = np.where(walls, "#", ".")
    if lava is not None:
        grid[np.asarray(lava, bool)] = "L"
    grid[tuple(np.asarray(start))] = "S"
    grid[tuple(np.asarray(goal))] = "G"
    return "\n".join("".join(row) for row in grid)


def _bfs(passable: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(H, W) int BFS distances from ``source`` through passable cells; -1 unreachable."""
    dist = np.full(passable.shape, -1, np.int64)
    dist[tuple(source)] = 0
    queue = collections.deque([tuple(int(x) for x in source)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nr, nc = r + dr, c + dc
            inside = 0 <= nr < passable.shape[0] and 0 <= nc < passable.shape[1]
            if inside and passable[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def _check_common(params: Any) -> None:
    """Checks shared by ``GridWorldParams`` and ``MazeParams`` (concrete values only)."""
    owner = type(params).__name__
    check_range(owner, "slip", params.slip, 0.0, 1.0)
    check_range(owner, "step_cost", params.step_cost, 0.0)
    check_range(owner, "goal_reward", params.goal_reward, 0.0)
    if params.obs_mode not in OBS_MODES:
        raise ValueError(
            f"{owner}.obs_mode={params.obs_mode!r} is not allowed; it must be one of {OBS_MODES}"
        )
    size = params.view_size
    if (
        not isinstance(size, (int, np.integer))
        or isinstance(size, bool)
        or size < 3
        or size % 2 == 0
    ):
        raise ValueError(f"{owner}.view_size={size!r} is not allowed; it must be an odd int >= 3")


@struct.dataclass
class GridWorldParams:
    """Traced rewards, slip and layout (vmap over them); static observation settings."""

    walls: jax.Array
    """(H, W) bool, True on walls."""
    lava: jax.Array
    """(H, W) bool, True on lava cells."""
    start: jax.Array
    """(2,) int32 start cell (row, col)."""
    goal: jax.Array
    """(2,) int32 goal cell (row, col)."""
    slip: float = 0.0
    """Probability in [0, 1] that the action is replaced by a uniformly random one."""
    step_cost: float = 0.01
    """Subtracted every step, >= 0."""
    goal_reward: float = 1.0
    """Added on entering the goal, >= 0."""
    lava_penalty: float = 1.0
    """Subtracted on entering lava, >= 0."""
    obs_mode: str = struct.field(pytree_node=False, default="onehot")
    """"onehot" (H*W,), "egocentric" (view_size, view_size, 3) or "image" (H, W, 4)."""
    view_size: int = struct.field(pytree_node=False, default=5)
    """Odd side >= 3 of the egocentric window."""

    def __post_init__(self):
        _check_common(self)
        check_range("GridWorldParams", "lava_penalty", self.lava_penalty, 0.0)
        walls, lava = concrete(self.walls), concrete(self.lava)
        if walls is None:
            return
        if walls.dtype != bool or (lava is not None and lava.dtype != bool):
            raise ValueError("GridWorldParams.walls and lava must be bool arrays")
        if walls.ndim < 2 or (lava is not None and lava.shape != walls.shape):
            shown = None if lava is None else lava.shape
            raise ValueError(
                f"GridWorldParams.walls has shape {walls.shape} and lava {shown}; "
                "both must be the same (H, W)"
            )
        height, width = walls.shape[-2:]
        for name in ("start", "goal"):
            cell = concrete(getattr(self, name))
            if cell is None:
                continue
            if cell.shape[-1:] != (2,):
                raise ValueError(f"GridWorldParams.{name} has shape {cell.shape}; it must be (2,)")
            check_range("GridWorldParams", f"{name}[0] (row)", cell[..., 0], 0, height - 1)
            check_range("GridWorldParams", f"{name}[1] (col)", cell[..., 1], 0, width - 1)
            if walls.ndim == 2 and cell.ndim == 1 and walls[tuple(cell)]:
                raise ValueError(f"GridWorldParams.{name}={cell.tolist()} is on a wall")


@struct.dataclass
class MazeParams:
    """``RandomMaze``'s params: as ``GridWorldParams`` without layout or lava."""

    slip: float = 0.0
    """Probability in [0, 1] that the action is replaced by a uniformly random one."""
    step_cost: float = 0.01
    """Subtracted every step, >= 0."""
    goal_reward: float = 1.0
    """Added on entering the goal, >= 0."""
    obs_mode: str = struct.field(pytree_node=False, default="image")
    """As in ``GridWorldParams``; "image" by default since the maze changes every episode."""
    view_size: int = struct.field(pytree_node=False, default=5)
    """Odd side >= 3 of the egocentric window."""

    def __post_init__(self):
        _check_common(self)


@struct.dataclass
class GridWorldState:
    pos: jax.Array
    """(2,) int32 agent cell (row, col)."""


@struct.dataclass
class MazeState:
    pos: jax.Array
    """(2,) int32 agent cell (row, col)."""
    walls: jax.Array
    """(size, size) bool walls of this episode's maze."""
    start: jax.Array
    """(2,) int32 start cell of this episode."""
    goal: jax.Array
    """(2,) int32 goal cell of this episode."""


class TabularModel(NamedTuple):
    """Exact MDP of a fixed layout over its S non-wall cells (row-major order).

    Goal and lava cells are absorbing with zero reward (the episode terminates
    on entering them, so their values are 0).

    Attributes:
        P: (S, A, S) float32 transition probabilities; rows sum to 1.
        R: (S, A) float32 expected reward of taking action a in state s.
        terminal: (S,) bool, goal and lava cells.
        positions: (S, 2) int32 cell (row, col) of each state index.
        start_index: int32 scalar, the start state's index.
    """

    P: jax.Array
    R: jax.Array
    terminal: jax.Array
    positions: jax.Array
    start_index: jax.Array


def _move(key, pos, action, walls, lava, goal, params):
    """The dynamics shared by both envs: (next pos, reward, terminated)."""
    action = jnp.clip(jnp.asarray(action, jnp.int32), 0, 3)
    # One uniform draw decides both whether to slip and (rescaled) which move:
    # given u < slip, u / slip is uniform on [0, 1).
    u = jax.random.uniform(key)
    slip = jnp.asarray(params.slip, jnp.float32)
    slipped = u < slip
    fraction = jnp.where(slipped, u / jnp.where(slipped, slip, 1.0), 0.0)
    action = jnp.where(slipped, jnp.minimum((fraction * 4).astype(jnp.int32), 3), action)
    height, width = walls.shape
    target = jnp.clip(pos + jnp.asarray(MOVES)[action], 0, np.array([height - 1, width - 1]))
    next_pos = jnp.where(walls[target[0], target[1]], pos, target)

    def terminal(p):
        return jnp.all(p == goal) | (False if lava is None else lava[p[0], p[1]])

    was_terminal = terminal(pos)
    at_goal = jnp.all(next_pos == goal)
    reward = jnp.where(at_goal, params.goal_reward, 0.0) - params.step_cost
    if lava is not None:
        reward = reward - jnp.where(lava[next_pos[0], next_pos[1]], params.lava_penalty, 0.0)
    next_pos = jnp.where(was_terminal, pos, next_pos)
    reward = jnp.where(was_terminal, 0.0, reward)
    return next_pos, reward, terminal(next_pos)


def _grid_mask(shape, cell):
    rows, cols = jnp.arange(shape[0])[:, None], jnp.arange(shape[1])[None, :]
    return (rows == cell[0]) & (cols == cell[1])


def _observe(pos, walls, lava, goal, obs_mode: str, view_size: int) -> jax.Array:
    height, width = walls.shape
    if obs_mode == "onehot":
        return (jnp.arange(height * width) == pos[0] * width + pos[1]).astype(jnp.float32)
    goal_grid = _grid_mask(walls.shape, goal)
    if obs_mode == "image":
        agent = _grid_mask(walls.shape, pos)
        return jnp.stack([walls, agent, goal_grid, lava], -1).astype(jnp.float32)
    half = view_size // 2
    channels = [
        jnp.pad(walls, half, constant_values=True),  # outside the grid counts as wall
        jnp.pad(goal_grid, half, constant_values=False),
        jnp.pad(lava, half, constant_values=False),
    ]
    padded = jnp.stack(channels, -1).astype(jnp.float32)
    return jax.lax.dynamic_slice(padded, (pos[0], pos[1], 0), (view_size, view_size, 3))


def _obs_space(shape: tuple[int, int], params: Any) -> Box:
    height, width = shape
    obs_shape = {
        "onehot": (height * width,),
        "egocentric": (params.view_size, params.view_size, 3),
        "image": (height, width, 4),
    }[params.obs_mode]
    return Box(0.0, 1.0, obs_shape, jnp.float32)


def _render(pos, walls, lava, goal, cell_size: int) -> jax.Array:
    """(H * cell_size, W * cell_size, 3) uint8: floor, walls, goal, lava, agent disk."""
    kind = jnp.where(walls, 1, jnp.where(_grid_mask(walls.shape, goal), 2, jnp.where(lava, 3, 0)))
    image = jnp.asarray(_COLORS)[kind]
    image = jnp.repeat(jnp.repeat(image, cell_size, axis=0), cell_size, axis=1)
    py = jnp.arange(walls.shape[0] * cell_size)[:, None]
    px = jnp.arange(walls.shape[1] * cell_size)[None, :]
    lines = ((py % cell_size) == 0) | ((px % cell_size) == 0)
    image = jnp.where(lines[..., None], (image * 0.8).astype(jnp.uint8), image)
    centre = (cell_size - 1) / 2
    dist2 = (py - pos[0] * cell_size - centre) ** 2 + (px - pos[1] * cell_size - centre) ** 2
    agent = dist2 <= (0.35 * cell_size) ** 2
    return jnp.where(agent[..., None], jnp.asarray(_AGENT_COLOR), image)


class GridWorld(Environment[GridWorldState, GridWorldParams]):
    """Grid navigation on a fixed layout; see the module docstring.

    Args:
        layout: a built-in layout name (``LAYOUTS``); "empty-8x8" if neither
            ``layout`` nor ``ascii_map`` is given.
        ascii_map: a custom map (string or list of rows), instead of ``layout``.
    """

    def __init__(self, layout: str | None = None, ascii_map: str | Sequence[str] | None = None):
        if layout is not None and ascii_map is not None:
            raise ValueError("GridWorld: pass layout or ascii_map, not both")
        if ascii_map is None:
            layout = "empty-8x8" if layout is None else layout
            if layout not in LAYOUTS:
                close = difflib.get_close_matches(str(layout), LAYOUTS, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ValueError(
                    f"GridWorld: layout={layout!r} is unknown; it must be one of "
                    f"{', '.join(LAYOUTS)}.{hint}"
                )
            ascii_map = LAYOUTS[layout]
        self.layout = parse_ascii_map(ascii_map)
        height, width = self.layout.walls.shape
        self._name = _LAYOUT_NAMES.get(layout, f"GridWorld-Custom-{height}x{width}")
        self.description = (
            f"Grid navigation ({height}x{width}{', ' + layout if layout else ''}): reach the "
            "goal, avoid lava; optional slip"
        )

    @property
    def name(self) -> str:
        return self._name

    def default_params(self, **overrides) -> GridWorldParams:
        walls, lava, start, goal = (jnp.asarray(x) for x in self.layout)
        return apply_overrides(GridWorldParams(walls, lava, start, goal), overrides)

    def reset(self, key, params):
        del key  # the start cell is fixed
        state = GridWorldState(jnp.asarray(params.start, jnp.int32))
        return state, restart(self._obs(state, params))

    def step(self, key, state, action, params):
        walls, lava = jnp.asarray(params.walls), jnp.asarray(params.lava)
        pos, reward, terminated = _move(key, state.pos, action, walls, lava, params.goal, params)
        state = GridWorldState(pos)
        return state, transition(self._obs(state, params), reward, terminated)

    def _obs(self, state, params):
        args = (params.walls, params.lava, params.goal, params.obs_mode, params.view_size)
        return _observe(state.pos, *args)

    def observation_space(self, params):
        params = self.default_params() if params is None else params
        return _obs_space(params.walls.shape[-2:], params)

    def action_space(self, params):
        return Discrete(4)

    def render(self, state, params, cell_size: int = 16) -> jax.Array:
        """(H * cell_size, W * cell_size, 3) uint8 RGB image; jittable and vmappable."""
        return _render(state.pos, params.walls, params.lava, params.goal, cell_size)

    def state_index(self, state: GridWorldState, params) -> jax.Array:
        """int32 index of ``state`` in ``tabular_model`` (row-major over non-wall cells)."""
        height, width = params.walls.shape
        index = jnp.cumsum(~params.walls.reshape(-1)) - 1
        return index[state.pos[0] * width + state.pos[1]].astype(jnp.int32)

    def observation_index(self, obs: jax.Array, params) -> jax.Array:
        """int32 ``state_index`` of the cell an "onehot" (H*W,) or "image" (H, W, 4)
        observation shows the agent in; egocentric views do not determine it."""
        if params.obs_mode == "egocentric":
            raise ValueError(
                "GridWorld.observation_index: obs_mode='egocentric' does not determine "
                "the agent's cell; use obs_mode='onehot' or 'image'"
            )
        flat = jnp.argmax(
            obs.reshape(-1) if params.obs_mode == "onehot" else obs[..., 1].reshape(-1)
        )
        index = jnp.cumsum(~params.walls.reshape(-1)) - 1
        return index[flat].astype(jnp.int32)

    def num_states(self, params) -> int:
        """Number of states of ``tabular_model(params)`` (the non-wall cells)."""
        walls = concrete(params.walls)
        if walls is None or walls.ndim != 2:
            raise ValueError("GridWorld.num_states needs concrete, unbatched params")
        return int((~walls.astype(bool)).sum())

    def index_to_position(self, index: Any, params) -> jax.Array:
        """(2,) int32 cell (row, col) of state ``index``; the inverse of ``state_index``."""
        width = params.walls.shape[1]
        free = ~params.walls.reshape(-1)
        flat = jnp.argmax((jnp.cumsum(free) - 1 == index) & free)
        return jnp.stack([flat // width, flat % width]).astype(jnp.int32)

    @staticmethod
    def _concrete(params) -> tuple[np.ndarray, ...]:
        arrays = [concrete(getattr(params, f)) for f in ("walls", "lava", "start", "goal")]
        if any(a is None for a in arrays) or arrays[0].ndim != 2:
            raise ValueError(
                "GridWorld: tabular_model and shortest_path_length need "
                "concrete, unbatched params; call them outside jit and vmap"
            )
        return arrays[0].astype(bool), arrays[1].astype(bool), arrays[2], arrays[3]

    def tabular_model(self, params: GridWorldParams) -> TabularModel:
        """The exact MDP of ``params`` (concrete, unbatched); see ``TabularModel``."""
        walls, lava, start, goal = self._concrete(params)
        height, width = walls.shape
        positions = np.argwhere(~walls)
        num_states = len(positions)
        index_map = np.full(walls.shape, -1)
        index_map[~walls] = np.arange(num_states)
        is_goal = np.all(positions == goal, axis=1)
        terminal = is_goal | lava[tuple(positions.T)]
        # next_index[s, m]: where move m leads from s (absorbing at terminals).
        target = np.clip(positions[:, None] + MOVES[None], 0, [height - 1, width - 1])
        blocked = walls[target[..., 0], target[..., 1]]
        landed = np.where(blocked[..., None], positions[:, None], target)
        next_index = index_map[landed[..., 0], landed[..., 1]]
        next_index[terminal] = np.arange(num_states)[terminal, None]
        reward = (
            np.where(is_goal, float(params.goal_reward), 0.0)
            - np.where(lava[tuple(positions.T)], float(params.lava_penalty), 0.0)
            - float(params.step_cost)
        )[next_index]
        reward[terminal] = 0.0
        slip = float(params.slip)
        move_probs = (1 - slip) * np.eye(4) + slip / 4  # (action, move actually made)
        P = np.zeros((num_states, 4, num_states))
        for move in range(4):
            P[np.arange(num_states)[:, None], np.arange(4), next_index[:, move, None]] += (
                move_probs[None, :, move]
            )
        return TabularModel(
            P=jnp.asarray(P, jnp.float32),
            R=jnp.asarray(reward @ move_probs.T, jnp.float32),
            terminal=jnp.asarray(terminal),
            positions=jnp.asarray(positions, jnp.int32),
            start_index=jnp.asarray(index_map[tuple(start)], jnp.int32),
        )

    def shortest_path_length(self, params: GridWorldParams) -> int:
        """Fewest steps from start to goal without lava (slip 0); -1 if unreachable."""
        walls, lava, start, goal = self._concrete(params)
        return int(_bfs(~walls & ~lava, start)[tuple(goal)])


def _maze_bits(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Packed random bits for one maze: east (n, n) bool, pick (n, n) uint32 < 2**16, spare uint32.

    Drawn as ceil(n^2 / 32) + ceil(n^2 / 2) + 1 words in one call, several times
    fewer than bernoulli + uniform draws (threefry dominates the cost of reset).
    """
    east_words, pick_words = -(-n * n // 32), -(-n * n // 2)
    words = jax.random.bits(key, (east_words + pick_words + 1,), jnp.uint32)
    index = np.arange(n * n)
    shifts = (index % 32).astype(np.uint32)
    east = ((words[index // 32] >> shifts) & 1).astype(bool).reshape(n, n)
    halves = jax.lax.bitcast_convert_type(words[east_words:-1], jnp.uint16).reshape(-1)
    return east, halves[: n * n].reshape(n, n).astype(jnp.uint32), words[-1]


def _sidewinder(east: jax.Array, pick: jax.Array) -> jax.Array:
    """(2n+1, 2n+1) bool walls of a perfect maze on n x n cells at odd coordinates.

    Args:
        east: (n, n) bool, whether each cell joins its run to the east.
        pick: (n, n) uniform ints in [0, 2**16); the run starting at a cell opens
            north at offset ``pick * length >> 16`` (bias < length / 2**16).
    """
    n = east.shape[0]
    col = jnp.arange(n)[None, :]
    # Top row: one corridor. Other rows: random runs joined eastwards, each run
    # opening north at one (near-)uniformly chosen member.
    east = east.at[0].set(True) & (col < n - 1)
    starts = jnp.concatenate([jnp.ones((n, 1), bool), ~east[:, :-1]], axis=1)
    run_start = jax.lax.cummax(jnp.where(starts, col, 0), axis=1)
    run_end = jax.lax.cummin(jnp.where(east, n - 1, col), axis=1, reverse=True)
    length = (run_end - run_start + 1).astype(jnp.uint32)
    offset = (jnp.take_along_axis(pick, run_start, axis=1) * length) >> 16
    north = (col == run_start + offset.astype(jnp.int32)) & (jnp.arange(n)[:, None] >= 1)
    south = jnp.concatenate([north[1:], jnp.zeros((1, n), bool)], axis=0)
    # Cell (i, j) owns grid rows 2i+1..2i+2, cols 2j+1..2j+2: [[cell, east], [south, wall]].
    top = jnp.stack([jnp.ones((n, n), bool), east], -1)
    bottom = jnp.stack([south, jnp.zeros((n, n), bool)], -1)
    open_ = jnp.stack([top, bottom], axis=2).transpose(0, 2, 1, 3).reshape(2 * n, 2 * n)
    return ~jnp.pad(open_, ((1, 0), (1, 0)))


def _symmetry(grid: jax.Array, bits: jax.Array) -> jax.Array:
    """One of the 8 symmetries of the square, chosen by the low 3 bits of ``bits``."""
    grid = jnp.where(bits & 1, grid.T, grid)
    grid = jnp.where(bits & 2, grid[::-1], grid)
    return jnp.where(bits & 4, grid[:, ::-1], grid)


class RandomMaze(Environment[MazeState, MazeParams]):
    """A fresh random perfect maze every reset, drawn from the reset key.

    Generation is the sidewinder algorithm, vectorised: each row below the top
    is cut into random runs of cells joined eastwards, and each run opens north
    at one uniformly chosen member (found with cumulative max/min, no loop);
    the top row is one corridor. Every cell is then connected to the top row by
    exactly one path, so the maze is perfect (a spanning tree: solvable, no
    loops). Sidewinder is chosen over the binary-tree algorithm because it has
    one straight corridor instead of two; that corridor and the north-east
    texture bias are removed in distribution by applying a random one of the 8
    symmetries of the square. It is loop-free and O(cells), which matters
    because auto-reset evaluates ``reset`` on every step under ``vmap``.

    The walls, start and goal live in the state; params hold only the rules
    (``MazeParams``). There is no lava and no tabular model.

    Args:
        size: grid side including the border walls; odd, >= 5 (``(size - 1) / 2``
            cells per side).
        start_goal: "corners": start and goal in opposite corners (a random
            pair, so paths are long); "random": two distinct random cells.
    """

    def __init__(self, size: int = 13, start_goal: str = "corners"):
        if isinstance(size, bool) or not isinstance(size, int) or size < 5 or size % 2 == 0:
            raise ValueError(
                f"RandomMaze: size={size!r} is not allowed; it must be an odd int >= 5"
            )
        if start_goal not in ("corners", "random"):
            raise ValueError(
                f"RandomMaze: start_goal={start_goal!r} is not allowed; "
                "it must be 'corners' or 'random'"
            )
        self.size, self.start_goal = size, start_goal
        self.description = f"Random {size}x{size} perfect maze redrawn every reset"

    @property
    def name(self) -> str:
        return "GridWorld-Maze" if self.size == 13 else f"GridWorld-Maze-{self.size}x{self.size}"

    def default_params(self, **overrides) -> MazeParams:
        return apply_overrides(MazeParams(), overrides)

    def reset(self, key, params):
        east, pick, spare = _maze_bits(key, (self.size - 1) // 2)
        walls = _symmetry(_sidewinder(east, pick), spare)
        start, goal = self._place(key, spare >> 3)
        state = MazeState(start, walls, start, goal)
        return state, restart(self._obs(state, params))

    def _place(self, key, bits):
        if self.start_goal == "corners":
            corner = jnp.stack([bits & 1, (bits >> 1) & 1]).astype(jnp.int32)
            start = 1 + corner * (self.size - 3)
            return start, self.size - 1 - start
        cells = (self.size - 1) // 2
        # A fresh key: ``key`` itself was consumed by ``_maze_bits``.
        first_key, second_key = jax.random.split(jax.random.fold_in(key, 1))
        first = jax.random.randint(first_key, (), 0, cells * cells)
        second = jax.random.randint(second_key, (), 0, cells * cells - 1)
        second = second + (second >= first)

        def cell(i):
            return (2 * jnp.stack([i // cells, i % cells]) + 1).astype(jnp.int32)

        return cell(first), cell(second)

    def step(self, key, state, action, params):
        pos, reward, terminated = _move(
            key, state.pos, action, state.walls, None, state.goal, params
        )
        state = state.replace(pos=pos)
        return state, transition(self._obs(state, params), reward, terminated)

    def _obs(self, state, params):
        lava = jnp.zeros_like(state.walls)
        return _observe(state.pos, state.walls, lava, state.goal, params.obs_mode, params.view_size)

    def observation_space(self, params):
        params = self.default_params() if params is None else params
        return _obs_space((self.size, self.size), params)

    def action_space(self, params):
        return Discrete(4)

    def render(self, state, params, cell_size: int = 16) -> jax.Array:
        """(size * cell_size, size * cell_size, 3) uint8 RGB image; jittable and vmappable."""
        lava = jnp.zeros_like(state.walls)
        return _render(state.pos, state.walls, lava, state.goal, cell_size)

    def tabular_model(self, params):
        raise ValueError(
            "RandomMaze has no tabular model: its layout is redrawn every reset. Freeze one "
            "maze with GridWorld(ascii_map=to_ascii(state.walls, state.start, state.goal))."
        )


def render_rollout(
    env: GridWorld | RandomMaze,
    key: jax.Array,
    params: Any,
    num_steps: int = 50,
    policy: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    cell_size: int = 16,
) -> jax.Array:
    """Frames of one episode of the raw (unwrapped) ``env``, for ``save_gif``.

    Pure and jittable; wrap it in ``jax.jit`` (closing over ``env`` and
    ``policy``) to avoid op-by-op dispatch.

    Args:
        policy: ``policy(key, obs) -> action``, traceable; uniformly random if None.

    Returns:
        (num_steps + 1, H * cell_size, W * cell_size, 3) uint8; after the episode
        terminates the last frame repeats.
    """
    if policy is None:

        def policy(key, obs):
            return jax.random.randint(key, (), 0, 4)

    reset_key, key = jax.random.split(key)
    state, ts = env.reset(reset_key, params)

    def body(carry, key):
        state, obs, done = carry
        act_key, step_key = jax.random.split(key)
        next_state, ts = env.step(step_key, state, policy(act_key, obs), params)
        state = jax.tree.map(lambda old, new: jnp.where(done, old, new), state, next_state)
        return (state, ts.obs, done | ts.terminated), env.render(state, params, cell_size)

    carry = (state, ts.obs, jnp.zeros((), bool))
    _, frames = jax.lax.scan(body, carry, jax.random.split(key, num_steps))
    first = env.render(state, params, cell_size)[None]
    return jnp.concatenate([first, frames], axis=0)


def save_gif(frames: Any, path: str | os.PathLike, fps: float = 8.0) -> None:
    """Write uint8 RGB frames ((T, H, W, 3) array or list of (H, W, 3)) as a looping GIF.

    Identical consecutive frames may be merged by the encoder.
    """
    import imageio.v3 as iio

    frames = np.stack([np.asarray(f) for f in frames])
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"save_gif: frames have shape {frames.shape} and dtype {frames.dtype}; "
            "they must be uint8 of shape (T, H, W, 3)"
        )
    if not fps > 0:
        raise ValueError(f"save_gif: fps={fps} is not allowed; it must be > 0")
    iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)


__all__ = [
    "LAYOUTS",
    "GridWorld",
    "GridWorldParams",
    "GridWorldState",
    "Layout",
    "MazeParams",
    "MazeState",
    "RandomMaze",
    "TabularModel",
    "parse_ascii_map",
    "render_rollout",
    "save_gif",
    "to_ascii",
]
