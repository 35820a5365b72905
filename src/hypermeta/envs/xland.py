"""XLand-MiniGrid inside the compiled rollout: `--env xland:ENV_ID[:OPTIONS]`.

Needs the optional extra `pip install -e ".[xland]"` (xminigrid). Options (commas between):

* `benchmark=NAME|PATH`: the rulesets, a published benchmark by name (`trivial-21k`,
  `small-1m`, `medium-1m`, `high-1m`, ...; xminigrid downloads it once into
  `$XLAND_MINIGRID_DATA`, default `~/.xland_minigrid`) or the path of a benchmark file
  (a downloaded one, or one made by xminigrid's `scripts/ruleset_generator.py`).
  Default `trivial-21k`, the default of XLand's RL^2 script (`training/train_meta_task.py`).
* `episodes=K`: episodes per trial, default 10 (that script's `eval_num_episodes`).
* `max-steps=N`: steps per episode, default XLand's 3 x height x width (243 on 9x9).
* `view=V`: the agent's view (odd), default XLand's 5.

The task is a ruleset (goal, production rules, initial objects) drawn uniformly from the
benchmark (`Benchmark.sample_ruleset`, as XLand's RL^2 script draws one per environment).
Its vector is the ruleset's encoding as floats: goal (5), rules (R x 7), initial tiles
(T x 2), R and T the benchmark's padded sizes. A trial is K episodes of one ruleset in
the same layout (the environment id: grid size and rooms); every episode is a fresh
`env.reset` with that ruleset, so objects, the agent and doors are placed anew, as
XLand's auto-reset does between the episodes of its trials. `MiniGrid-*` ids have one
fixed task (a vector of one zero).

Observations: XLand's symbolic view, (V, V, 2) tile and colour ids, one-hot encoded per
cell ((V, V, 13 + 12), flattened: a linear layer over it is a per-cell embedding of tile
and colour, XLand's own first layer) followed by the agent's direction one-hot (4), what
XLand's RL^2 agent reads (`DirectionObservationWrapper`). The view is declared as
`image_shape`, so `--model.obs-encoder cnn` runs the CNN over it. Actions: XLand's 6.
Rewards: XLand's, 1 - 0.9 t / max_steps on reaching the goal; the time limit is reported
as `info["timeout"]`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hypermeta.envs.adapter_names import int_option, split_options
from hypermeta.envs.base import Array, Box, Discrete, Environment, PRNGKey
from hypermeta.errors import UsageError

INSTALL = 'pip install -e ".[xland]"'
OPTIONS = ("benchmark", "episodes", "max-steps", "view")
NUM_TILES, NUM_COLORS = 13, 12  # xminigrid.core.constants
GOAL_LEN, RULE_LEN = 5, 7  # MAX_GOAL_ENCODING_LEN, MAX_RULE_ENCODING_LEN


def xminigrid_module():
    """The xminigrid package, or a one-line UsageError naming the install command."""
    try:
        import xminigrid
    except ImportError:
        raise UsageError(f"the XLand-MiniGrid environments need the optional extra: {INSTALL}") from None
    return xminigrid


@functools.lru_cache(maxsize=4)
def load_rulesets(benchmark: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(goals (N, 5), rules (N, R, 7), init_tiles (N, T, 2)) of a benchmark name or file,
    as uint8 numpy arrays (cached: a run builds its environment a few times)."""
    xminigrid = xminigrid_module()
    from xminigrid.benchmarks import load_benchmark, load_benchmark_from_path

    if os.path.isfile(benchmark):
        bench = load_benchmark_from_path(benchmark)
    elif benchmark in xminigrid.registered_benchmarks():
        try:
            bench = load_benchmark(benchmark)
        except OSError as e:  # urllib's URLError is an OSError
            raise UsageError(f"could not download the XLand benchmark {benchmark!r} ({e}); on a machine without "
                             "internet, copy the file from a machine that has it into $XLAND_MINIGRID_DATA or pass benchmark=PATH") from None
    else:
        raise UsageError(f"XLand benchmark {benchmark!r} is neither a file nor a published benchmark; published: "
                         f"{', '.join(xminigrid.registered_benchmarks())}")
    return tuple(np.asarray(a, np.uint8) for a in (bench.goals, bench.rules, bench.init_tiles))  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class XLandEnv(Environment):
    """An XLand-MiniGrid environment whose tasks are a benchmark's rulesets (module docstring)."""

    env_id: str = "XLand-MiniGrid-R1-9x9"
    benchmark: str = "trivial-21k"
    episodes_per_trial: int = 10
    max_steps: int = 0
    """0: XLand's default, 3 x height x width."""
    view: int = 0
    """0: the environment's default view size (5 on XLand)."""
    max_episode_steps: int = field(init=False)
    _env: Any = field(init=False, repr=False)
    _params: Any = field(init=False, repr=False)
    _rulesets: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        xminigrid = xminigrid_module()
        if self.env_id not in xminigrid.registered_environments():
            raise UsageError(f"unknown XLand-MiniGrid environment {self.env_id!r}; choose one of: "
                             f"{', '.join(xminigrid.registered_environments())}")
        env, params = xminigrid.make(self.env_id)
        params = params.replace(**({"max_steps": self.max_steps} if self.max_steps else {}),
                                **({"view_size": self.view} if self.view else {}))
        rulesets = load_rulesets(self.benchmark) if self.meta else None
        for key, value in (("_env", env), ("_params", params), ("_rulesets", rulesets),
                           ("max_episode_steps", int(params.max_steps))):
            object.__setattr__(self, key, value)

    @property
    def meta(self) -> bool:
        """XLand ids draw rulesets from a benchmark; MiniGrid ids have one fixed task."""
        return self.env_id.startswith("XLand-MiniGrid")

    @property
    def image_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        v = self._params.view_size
        return (v, v, NUM_TILES + NUM_COLORS)

    @property
    def observation_space(self) -> Box:
        return Box(low=0.0, high=1.0, shape=(int(np.prod(self.image_shape)) + 4,))

    @property
    def action_space(self) -> Discrete:
        return Discrete(self._env.num_actions(self._params))

    @property
    def task_dim(self) -> int:
        if not self.meta:
            return 1
        _, rules, tiles = self._rulesets
        return GOAL_LEN + rules.shape[1] * RULE_LEN + tiles.shape[1] * 2

    @property
    def num_rulesets(self) -> int:
        return 0 if not self.meta else int(self._rulesets[0].shape[0])

    def ruleset_vector(self, index: Array) -> Array:
        """The task vector of the benchmark's ruleset `index`."""
        return jnp.concatenate([jnp.asarray(a)[index].ravel().astype(jnp.float32) for a in self._rulesets])

    def ruleset(self, task: Array) -> Any:
        """xminigrid's RuleSet of a task vector."""
        from xminigrid.types import RuleSet

        _, rules, tiles = self._rulesets
        ids = jnp.round(task).astype(jnp.uint8)
        split = [GOAL_LEN, GOAL_LEN + rules.shape[1] * RULE_LEN]
        goal, rule, tile = jnp.split(ids, split)
        return RuleSet(goal=goal, rules=rule.reshape(rules.shape[1:]), init_tiles=tile.reshape(tiles.shape[1:]))

    def sample_task(self, key: PRNGKey) -> Array:
        if not self.meta:
            return jnp.zeros((1,), jnp.float32)
        # Benchmark.sample_ruleset's draw: a uniform index.
        return self.ruleset_vector(jax.random.randint(key, (), 0, self.num_rulesets))

    def params_for(self, task: Array) -> Any:
        """xminigrid's env params with the task's ruleset."""
        return self._params.replace(ruleset=self.ruleset(task)) if self.meta else self._params

    def observe(self, timestep: Any) -> Array:
        """One-hot tiles and colours of the view, flattened, then the direction one-hot."""
        view = timestep.observation.astype(jnp.int32)
        cells = jnp.concatenate([jax.nn.one_hot(view[..., 0], NUM_TILES), jax.nn.one_hot(view[..., 1], NUM_COLORS)], -1)
        return jnp.concatenate([cells.ravel(), jax.nn.one_hot(timestep.state.agent.direction, 4)])

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, Any]:
        timestep = self._env.reset(self.params_for(task), key)
        return self.observe(timestep), timestep

    def step(self, key: PRNGKey, state: Any, action: Array, task: Array) -> tuple[Array, Any, Array, Array, dict]:
        timestep = self._env.step(self.params_for(task), state, action)
        done = timestep.last()
        # discount 0: the goal was reached; otherwise an episode end is XLand's time limit.
        info = {"timeout": jnp.logical_and(done, timestep.discount > 0)}
        return self.observe(timestep), timestep, timestep.reward.astype(jnp.float32), done, info


def make(full: str, rest: str) -> XLandEnv:
    """The environment of `xland:REST` (`full` is the whole name, for messages)."""
    env_id, options = split_options(full, rest, OPTIONS)
    view = int_option(full, options, "view", 0, minimum=0)
    if view and view % 2 == 0:
        raise UsageError(f"--env {full!r}: view={view} must be odd")
    return XLandEnv(env_id, options.get("benchmark", XLandEnv.benchmark), int_option(full, options, "episodes", 10),
                    int_option(full, options, "max-steps", 0, minimum=0), view)


def check(full: str, rest: str) -> None:
    """Raise the UsageError of a bad `xland:REST` (missing extra, unknown id or option)
    without loading a benchmark."""
    xminigrid = xminigrid_module()
    env_id, options = split_options(full, rest, OPTIONS)
    if env_id not in xminigrid.registered_environments():
        raise UsageError(f"unknown XLand-MiniGrid environment {env_id!r} in {full!r}; choose one of: "
                         f"{', '.join(xminigrid.registered_environments())}")
    for key in ("episodes", "max-steps", "view"):
        int_option(full, options, key, 1, minimum=0 if key != "episodes" else 1)


def reference_returns(full: str, rest: str) -> dict[str, float]:
    """No measured lines: a benchmark's random return depends on its file."""
    return {}
