"""MC-LS: the long-memory maze of Beck et al. (2020), as a pure-JAX environment with rendered views.

The paper's MC-LS ran from cached Minecraft screenshots. The task itself is a finite-state
maze, so here the views are rendered procedurally from the state; the structure, rewards
and memory demand are those of the authors' implementation (original-implementation.md 4.1).

An episode has three phases:

* Phase 0, the signal tile: the view is green (the final turn must be RIGHT) or red (LEFT).
  The colour is the task, fixed for the whole trial, 50/50. RIGHT leaves the tile (+0.1);
  LEFT and FORWARD are blocked.
* Phase 1, `rooms` rooms. Room cells, in room coordinates (x, y):

        (-1,3) (0,3) (1,3)        forward from (0,3) enters the next room's (0,0)
        (-1,2) [col] (1,2)        the column stands at (0,2)
        (-1,1) (0,1) (1,1)
               (0,0)              entry

  FORWARD is blocked at (0,1), (-1,3) and (1,3); sideways moves are blocked at (0,0),
  (+-1,1), (+-1,2) and (0,3); (-1,3) allows only RIGHT and (1,3) only LEFT. Each room has a
  binary type, visible as the column's colour and resampled every episode: stepping from
  (0,1) onto (1,1) is correct for type 1 and onto (-1,1) for type 0.
* Phase 2, the end tile: LEFT or RIGHT ends the episode with +4 if it matches the signal
  and -3 otherwise; FORWARD is blocked.

Rewards: +0.1 for every move that changes position, except moves from (0,1) (the room
check pays +0.1 if the side is correct, 0 otherwise) and the final turn; blocked moves
pay 0. The optimal episode takes 6 * 16 + 2 = 98 steps and returns 0.1 + 16 * 0.6 + 4 =
13.7; a policy that navigates perfectly but ignores the signal averages 13.7 - 3.5 = 10.2.

Timeout (`max_episode_steps` = the reference's `timeout`, 200): an episode lasts at most
200 steps, of which the last is a no-op. The agent's first 199 actions act as above; the
200th changes nothing, pays 0 and ends the episode, as in the authors' mine_maze.py, whose
step counter starts at 1 at the reset and whose step returns (the same view, 0, done)
once it reaches the timeout (their `_max_episode_steps` of 201 only sizes buffers).

Actions: 0 LEFT, 1 FORWARD, 2 RIGHT (moves in the maze's frame; there is no heading).
Trials have 2 episodes: the signal is kept, the room types are resampled.

Views are top-down pictures of the agent's surroundings (see `render`): the signal
colour, the room's column (type) and the agent's cell, or the end tile. They carry
exactly the information of the authors' first-person screenshots (signal colour, room
type, position within the room, the end) and nothing more: in particular not the room
index. Observations are the RGB image flattened and scaled to [-1, 1]; `noise_std` adds
Gaussian noise, clipped back to [-1, 1] (MC-LSN), and `hidden_signal` shows a blank
signal tile (MC-LSH).

The authors' registrations (environments/__init__.py): MC-LS-v0 16 rooms, no noise;
MC-LSN-v0 10 rooms, noise 0.05 (clipped to [-1, 1] in mine_maze.py's `get_obs`);
MC-LSH-v0 16 rooms, hidden signal, no noise. All: a 1-step signal, timeout 200, rewards
0.1 / 0.1 / 4 / -3, wrong checks 0. (MC-LSO-v0, a 2-step signal pattern, is registered
but used by no experiment set and not implemented here.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hypermeta.envs.base import Array, Box, Discrete, Environment, PRNGKey

LEFT, FORWARD, RIGHT = 0, 1, 2
SIGNAL, ROOMS, END = 0, 1, 2  # phases

#: The room's cells in room coordinates (x, y); the index is the state's `cell`.
CELLS = ((0, 0), (0, 1), (-1, 1), (1, 1), (-1, 2), (1, 2), (-1, 3), (0, 3), (1, 3))
CHECK_CELL = 1  # (0, 1): the side taken from here is the room's check
_BLOCKED, _EXIT = -1, len(CELLS)


def _transitions() -> np.ndarray:
    """NEXT[cell, action]: the next cell, _BLOCKED, or _EXIT (forward out of the room)."""
    index = {xy: i for i, xy in enumerate(CELLS)}
    table = np.full((len(CELLS), 3), _BLOCKED, np.int32)
    forward_blocked = {(0, 1), (-1, 3), (1, 3)}
    for (x, y), i in index.items():
        if (x, y) == (0, 3):
            table[i, FORWARD] = _EXIT
        elif (x, y) not in forward_blocked:
            table[i, FORWARD] = index[(x, y + 1)]
    table[index[(0, 1)], LEFT] = index[(-1, 1)]
    table[index[(0, 1)], RIGHT] = index[(1, 1)]
    table[index[(-1, 3)], RIGHT] = index[(0, 3)]
    table[index[(1, 3)], LEFT] = index[(0, 3)]
    return table


NEXT = _transitions()  # numpy: a JAX array at import would start a backend (the sweep driver's too)

# --- Rendering -----------------------------------------------------------------------
# A 10 x 10 picture (row 0 at the top); each room cell is a 2 x 2 block. Resolutions
# other than 10 sample this picture with nearest-neighbour indexing.
_BASE = 10
WALL = (0.25, 0.25, 0.25)
FLOOR = (0.6, 0.6, 0.6)
AGENT = (1.0, 0.85, 0.0)
GREEN = (0.1, 0.8, 0.1)
RED = (0.85, 0.1, 0.1)
COLUMN = ((0.8, 0.55, 0.4), (0.3, 0.9, 0.9))  # type 0 ("iron"), type 1 ("diamond")
END_WALL = (0.6, 0.2, 0.8)


def _block(x: int, y: int) -> tuple[slice, slice]:
    """Pixel rows and columns of room cell (x, y)."""
    row = 1 + 2 * (3 - y)
    col = 2 + 2 * (x + 1)
    return slice(row, row + 2), slice(col, col + 2)


def _pictures() -> dict[str, np.ndarray]:
    """The static parts of every view, as float arrays in [0, 1]."""
    room = np.empty((_BASE, _BASE, 3), np.float32)
    room[:] = WALL
    for x, y in CELLS:
        room[_block(x, y)] = FLOOR
    room[0, 4:6] = FLOOR  # the doorway ahead
    room[9, 4:6] = FLOOR  # the doorway behind

    tile = np.empty_like(room)  # signal and end tiles: an open floor
    tile[:] = WALL
    tile[1:9, 2:8] = FLOOR
    tile[_block(0, 0)] = AGENT

    signal = {}
    for name, colour in (("green", GREEN), ("red", RED), ("blank", FLOOR)):
        picture = tile.copy()
        picture[3:7, 3:7] = colour
        picture[7:9, 8:10] = FLOOR  # the way out, to the right
        signal[name] = picture
    end = tile.copy()
    end[1:3, 2:8] = END_WALL
    end[3:5, 0:2] = FLOOR
    end[3:5, 8:10] = FLOOR

    column = np.zeros((_BASE, _BASE), bool)
    column[_block(0, 2)] = True
    cell_masks = np.zeros((len(CELLS), _BASE, _BASE), bool)
    for i, (x, y) in enumerate(CELLS):
        cell_masks[i][_block(x, y)] = True
    return dict(room=room, green=signal["green"], red=signal["red"], blank=signal["blank"], end=end,
                column=column, cell_masks=cell_masks)


_PICTURES = _pictures()  # numpy, as NEXT; made JAX arrays where rendered


@struct.dataclass
class MazeState:
    """Phase (0 signal, 1 rooms, 2 end), room index, cell within the room, room types, steps taken."""

    phase: Array  # int32 ()
    room: Array  # int32 ()
    cell: Array  # int32 () index into CELLS
    room_types: Array  # int32 (rooms,) 0 or 1, resampled every episode
    t: Array  # int32 ()


@dataclass(frozen=True)
class MCLS(Environment):
    """MC-LS and its MC-LSN (noisy views) / MC-LSH (hidden signal) variants."""

    rooms: int = 16
    resolution: int = 10
    """Views are resolution x resolution x 3 (the authors downsampled to 10 x 10)."""
    noise_std: float = 0.0
    """Std of Gaussian noise added to every observation value in [-1, 1] units, after which
    the observation is clipped to [-1, 1] again (MC-LSN: 0.05)."""
    hidden_signal: bool = False
    """MC-LSH: the signal tile shows no colour; the signal must be inferred from the outcome."""
    max_episode_steps: int = 200
    """Steps per episode at most; the last one is a no-op (the reference's `timeout`)."""
    episodes_per_trial: int = 2
    progress_reward: float = 0.1
    check_reward: float = 0.1
    success_reward: float = 4.0
    failure_reward: float = -3.0

    def __post_init__(self) -> None:
        if self.rooms < 1:
            raise ValueError(f"MC-LS needs at least 1 room, got rooms={self.rooms}")
        if self.resolution < 1:
            raise ValueError(f"MC-LS view resolution must be >= 1 pixel, got {self.resolution}")
        if self.noise_std < 0:
            raise ValueError(f"MC-LS noise_std must be >= 0, got {self.noise_std}")

    @property
    def image_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (self.resolution, self.resolution, 3)

    @property
    def observation_space(self) -> Box:
        return Box(low=-1.0, high=1.0, shape=(self.resolution * self.resolution * 3,))

    @property
    def action_space(self) -> Discrete:
        return Discrete(3)

    @property
    def task_dim(self) -> int:
        return 1

    @property
    def optimal_return(self) -> float:
        """Return of the optimal episode: leave the signal, every room correctly, the right turn."""
        return self.progress_reward + self.rooms * (5 * self.progress_reward + self.check_reward) + self.success_reward

    @property
    def optimal_steps(self) -> int:
        return 6 * self.rooms + 2

    def sample_task(self, key: PRNGKey) -> Array:
        """+1: green signal, turn right at the end; -1: red, turn left."""
        return jnp.where(jax.random.bernoulli(key), 1.0, -1.0)[None].astype(jnp.float32)

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, MazeState]:
        types_key, noise_key = jax.random.split(key)
        zero = jnp.zeros((), jnp.int32)
        state = MazeState(
            phase=zero, room=zero, cell=zero,
            room_types=jax.random.bernoulli(types_key, 0.5, (self.rooms,)).astype(jnp.int32), t=zero,
        )
        return self._observe(noise_key, state, task), state

    def step(
        self, key: PRNGKey, state: MazeState, action: Array, task: Array
    ) -> tuple[Array, MazeState, Array, Array, dict[str, Array]]:
        p = self.progress_reward
        # Phase 0: only RIGHT leaves the signal tile.
        leave = action == RIGHT
        # Phase 1: the room's transition table.
        nxt = jnp.asarray(NEXT)[state.cell, action]
        moved = nxt != _BLOCKED
        exits = nxt == _EXIT
        room_type = state.room_types[jnp.minimum(state.room, self.rooms - 1)]
        correct_side = jnp.where(room_type == 1, 3, 2)  # cell index of (1,1) or (-1,1)
        check = jnp.where(nxt == correct_side, self.check_reward, 0.0)
        room_reward = jnp.where(moved, jnp.where(state.cell == CHECK_CELL, check, p), 0.0)
        room = state.room + exits.astype(jnp.int32)
        room_phase = jnp.where(exits & (room == self.rooms), END, ROOMS)
        # Phase 2: a turn ends the episode.
        turn = action != FORWARD
        turn_right = action == RIGHT
        end_reward = jnp.where(turn, jnp.where(turn_right == (task[0] > 0), self.success_reward, self.failure_reward), 0.0)

        phase = state.phase
        reward = jnp.select([phase == SIGNAL, phase == ROOMS], [jnp.where(leave, p, 0.0), room_reward], end_reward)
        next_phase = jnp.select([phase == SIGNAL, phase == ROOMS], [jnp.where(leave, ROOMS, SIGNAL), room_phase], END)
        next_room = jnp.where(phase == ROOMS, room, state.room)
        next_cell = jnp.where((phase == ROOMS) & moved, jnp.where(exits, 0, nxt), state.cell)
        t = state.t + 1
        # The episode's last step (the reference's `timeout`-th) is a no-op: nothing moves, 0 reward.
        timed_out = t >= self.max_episode_steps
        reward = jnp.where(timed_out, 0.0, reward)
        done = ((phase == END) & turn) | timed_out
        new_state = MazeState(
            phase=jnp.where(timed_out, state.phase, next_phase).astype(jnp.int32),
            room=jnp.where(timed_out, state.room, next_room),
            cell=jnp.where(timed_out, state.cell, next_cell).astype(jnp.int32),
            room_types=state.room_types, t=t,
        )
        obs = self._observe(key, new_state, task)
        info = {"phase": new_state.phase, "room": new_state.room, "timeout": timed_out}
        return obs, new_state, reward.astype(jnp.float32), done, info

    def render(self, state: MazeState, task: Array) -> Array:
        """The view of `state` as a (resolution, resolution, 3) image in [0, 1]."""
        pics = {k: jnp.asarray(v) for k, v in _PICTURES.items()}
        signal = pics["blank"] if self.hidden_signal else jnp.where(task[0] > 0, pics["green"], pics["red"])
        room_type = state.room_types[jnp.minimum(state.room, self.rooms - 1)]
        column_colour = jnp.asarray(COLUMN)[room_type]
        room = jnp.where(pics["column"][..., None], column_colour, pics["room"])
        room = jnp.where(pics["cell_masks"][state.cell][..., None], jnp.asarray(AGENT), room)
        image = jnp.select([state.phase == SIGNAL, state.phase == ROOMS], [signal, room], pics["end"])
        if self.resolution != _BASE:  # nearest-neighbour sampling of the 10 x 10 picture
            idx = np.minimum(((np.arange(self.resolution) + 0.5) * _BASE / self.resolution).astype(int), _BASE - 1)
            image = image[idx][:, idx]
        return image

    def _observe(self, key: PRNGKey, state: MazeState, task: Array) -> Array:
        obs = 2.0 * self.render(state, task).reshape(-1) - 1.0
        if self.noise_std > 0:  # the reference clips the noisy view back to [-1, 1]
            obs = jnp.clip(obs + self.noise_std * jax.random.normal(key, obs.shape), -1.0, 1.0)
        return obs.astype(jnp.float32)

    def prepare_pictures(self) -> None:
        """An MC-LS animation needs only Pillow."""

    def draw_trial(self, steps: dict, t: int, beliefs: Any, folder: Path, stem: str, title: str) -> list[Path]:
        """One animated GIF of the agent's views, captioned with episode, step, action and reward."""
        from hypermeta.analysis.behaviour import gif_bytes, mc_ls_frames, save

        return [save(folder / f"{stem}.gif", gif_bytes(mc_ls_frames(self, steps, t)))]
