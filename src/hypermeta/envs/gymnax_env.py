"""gymnax environments inside the compiled rollout: `--env gymnax:NAME[:OPTIONS]`.

Needs the optional extra `pip install -e ".[gymnax]"`. The adapter calls gymnax's
functional API (`reset_env`, `step_env`, `is_truncated`) with explicit state and params;
our `TrialWrapper` does the resets gymnax's own `step` would do, so a step equals
`env.step(key, ...)` of gymnax for the same key (the adapter splits the key as gymnax
does) and the reset that follows an episode end is ours, with the trial's task.

What a task is, per environment:

* gymnax's meta-RL environments (`META_TASK_FIELDS`: MetaMaze, the Bernoulli and the
  Gaussian bandit) draw their task in `reset_env` and keep it in the state (MetaMaze's
  goal, a bandit's arm means). The task vector is those state fields, drawn by the
  environment's own `reset_env`; every episode of a trial starts with them put back.
  A trial is one episode by default, gymnax's own meta-learning setup (MetaMaze: 200
  steps, the goal stays while the agent is teleported after each visit).
* Any other environment: a fixed task (a constant vector of one zero), or
  environment parameters drawn uniformly from user-given ranges,
  `gymnax:CartPole-v1:length=0.25..0.75,masspole=0.05..0.2` (the task vector is the
  drawn values, in that order). `episodes=K` sets the episodes per trial.

Observations are gymnax's, flattened to float32; an (h, w, c) observation (MinAtar)
declares `image_shape`, so `--model.obs-encoder cnn` applies. Episode ends at the time
limit are reported as `info["timeout"]` (gymnax's `truncated` and not `terminated`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hypermeta.envs.adapter_names import int_option, split_options
from hypermeta.envs.base import Array, Box, Discrete, Environment, PRNGKey, Space
from hypermeta.errors import UsageError

INSTALL = 'pip install -e ".[gymnax]"'

META_TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "MetaMaze-misc": ("goal",),
    "BernoulliBandit-misc": ("reward_probs", "exp_reward_best"),
    "GaussianBandit-misc": ("mu",),
}
"""gymnax's meta-RL environments -> the state fields that hold the task `reset_env` draws."""

REFERENCE_RETURNS: dict[str, dict[str, float]] = {
    # Uniform random actions, one episode of up to 200 steps per trial (it ends early where the
    # teleport after a visit lands on the goal): 7.87 over 4,096 trials (standard error 0.15);
    # tests/test_gymnax_env.py::test_jit_over_1024_envs_and_the_random_return checks it.
    "MetaMaze-misc": {"random": 7.87},
}
"""Per-trial returns drawn on learning curves, per gymnax name (default options only)."""


def gymnax_module():
    """The gymnax package, or a one-line UsageError naming the install command."""
    try:
        import gymnax
    except ImportError:
        raise UsageError(f"the gymnax environments need the optional extra: {INSTALL}") from None
    return gymnax


@dataclass(frozen=True)
class ParamRange:
    """An environment parameter drawn uniformly from [low, high] for each trial."""

    name: str
    low: float
    high: float


@dataclass(frozen=True, eq=False)
class GymnaxEnv(Environment):
    """A gymnax environment with explicit tasks (see the module docstring)."""

    name: str
    ranges: tuple[ParamRange, ...] = ()
    episodes_per_trial: int = 1
    max_episode_steps: int = field(init=False)
    _env: Any = field(init=False, repr=False)
    _params: Any = field(init=False, repr=False)
    _state_types: Any = field(init=False, repr=False)
    _obs_shape: tuple[int, ...] = field(init=False, repr=False)
    _spaces: tuple[Box, Space] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        gymnax = gymnax_module()
        if self.name not in gymnax.registered_envs:
            raise UsageError(f"unknown gymnax environment {self.name!r}; choose one of: {', '.join(gymnax.registered_envs)}")
        env, params = gymnax.make(self.name)
        known = [f.name for f in dataclasses.fields(params)]
        for r in self.ranges:
            if r.name not in known:
                raise UsageError(f"gymnax:{self.name}: no parameter {r.name!r}; its parameters: {', '.join(known)}")
        if self.ranges and self.name in META_TASK_FIELDS:
            raise UsageError(f"gymnax:{self.name} draws its own tasks ({', '.join(META_TASK_FIELDS[self.name])}); "
                             "parameter ranges are for the other gymnax environments")
        for key, value in (("_env", env), ("_params", params), ("max_episode_steps", int(params.max_steps_in_episode))):
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_obs_shape", self._obs_shape_of(env, params))
        with jax.ensure_compile_time_eval():  # gymnax builds its spaces with jnp; read them once, concretely
            object.__setattr__(self, "_spaces", _spaces(env, params, self._obs_shape))
        # Reset and step may type a state field differently (a Python 0 vs an int32 action); the
        # trial wrapper selects between them, so both are cast to the step's types.
        key = jax.random.PRNGKey(0)
        object.__setattr__(self, "_state_types", jax.eval_shape(
            lambda k: env.step_env(k, env.reset_env(k, params)[1], self.action_space.sample(k), params)[1], key))

    @property
    def task_kind(self) -> str:
        """"meta" (the environment's own task), "params" (drawn parameters) or "fixed"."""
        return "meta" if self.name in META_TASK_FIELDS else "params" if self.ranges else "fixed"

    @staticmethod
    def _obs_shape_of(env: Any, params: Any) -> tuple[int, ...]:
        return tuple(jax.eval_shape(lambda k: env.reset_env(k, params)[0], jax.random.PRNGKey(0)).shape)

    @property
    def observation_space(self) -> Box:
        return self._spaces[0]

    @property
    def image_shape(self) -> tuple[int, int, int] | None:  # type: ignore[override]
        return self._obs_shape if len(self._obs_shape) == 3 else None  # type: ignore[return-value]

    @property
    def action_space(self) -> Space:
        return self._spaces[1]

    @property
    def task_dim(self) -> int:
        if self.task_kind == "meta":
            return int(jax.eval_shape(self.sample_task, jax.random.PRNGKey(0)).shape[0])
        return max(len(self.ranges), 1)

    def _task_fields(self, state: Any) -> list[Array]:
        return [getattr(state, f) for f in META_TASK_FIELDS[self.name]]

    def sample_task(self, key: PRNGKey) -> Array:
        if self.task_kind == "meta":  # the environment's own draw, from its own reset
            _, state = self._env.reset_env(key, self._params)
            return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in self._task_fields(state)])
        if self.task_kind == "params":
            low = jnp.array([r.low for r in self.ranges], jnp.float32)
            high = jnp.array([r.high for r in self.ranges], jnp.float32)
            return jax.random.uniform(key, low.shape, minval=low, maxval=high)
        return jnp.zeros((1,), jnp.float32)

    def params_for(self, task: Array) -> Any:
        """gymnax's EnvParams of `task` (drawn parameters replaced; otherwise the defaults)."""
        if self.task_kind != "params":
            return self._params
        return self._params.replace(**{r.name: task[i] for i, r in enumerate(self.ranges)})

    def _with_task(self, state: Any, task: Array) -> Any:
        """`state` with a meta task's fields set to `task` (other kinds: unchanged)."""
        if self.task_kind != "meta":
            return state
        values, start = {}, 0
        for name, x in zip(META_TASK_FIELDS[self.name], self._task_fields(self._state_types), strict=True):
            size = math.prod(x.shape)
            values[name] = task[start:start + size].reshape(x.shape).astype(x.dtype)
            start += size
        return state.replace(**values)

    def _cast(self, state: Any) -> Any:
        return jax.tree.map(lambda x, t: jnp.asarray(x, t.dtype), state, self._state_types)

    def reset(self, key: PRNGKey, task: Array) -> tuple[Array, Any]:
        params = self.params_for(task)
        obs, state = self._env.reset_env(key, params)
        if self.task_kind == "meta":
            state = self._with_task(state, task)
            obs = self._env.get_obs(state, params)
        return jnp.ravel(obs).astype(jnp.float32), self._cast(state)

    def step(self, key: PRNGKey, state: Any, action: Array, task: Array) -> tuple[Array, Any, Array, Array, dict]:
        params = self.params_for(task)
        step_key, _ = jax.random.split(key)  # gymnax's `step` splits (step, reset) the same way
        obs, state, reward, terminated, _ = self._env.step_env(step_key, state, action, params)
        truncated = self._env.is_truncated(state, params)
        done = jnp.logical_or(terminated, truncated)
        info = {"timeout": jnp.logical_and(truncated, jnp.logical_not(terminated))}
        return jnp.ravel(obs).astype(jnp.float32), self._cast(state), jnp.asarray(reward, jnp.float32), done, info


def _spaces(env: Any, params: Any, obs_shape: tuple[int, ...]) -> tuple[Box, Space]:
    """Our (observation, action) spaces of a gymnax environment: bounds as floats (the
    observation's flattened, over all its elements), a discrete space's size."""
    obs = env.observation_space(params)
    obs_space = Box(low=float(np.min(np.asarray(obs.low))), high=float(np.max(np.asarray(obs.high))),
                    shape=(math.prod(obs_shape),))
    act = env.action_space(params)
    if hasattr(act, "n"):
        return obs_space, Discrete(int(act.n))
    low, high = float(np.min(np.asarray(act.low))), float(np.max(np.asarray(act.high)))
    return obs_space, Box(low=low, high=high, shape=tuple(act.shape) or (1,))


def parse_range(full: str, key: str, value: str) -> ParamRange:
    """`low..high` (or one number: a fixed value) of the parameter `key`."""
    low, sep, high = value.partition("..")
    try:
        lo, hi = float(low), float(high if sep else low)
    except ValueError:
        raise UsageError(f"--env {full!r}: {key}={value!r}; write {key}=LOW..HIGH (numbers)") from None
    if hi < lo:
        raise UsageError(f"--env {full!r}: {key}={value!r} has LOW > HIGH")
    return ParamRange(key, lo, hi)


def make(full: str, rest: str) -> GymnaxEnv:
    """The environment of `gymnax:REST` (`full` is the whole name, for messages)."""
    name, options = split_options(full, rest, None)
    episodes = int_option(full, options, "episodes", 1)
    ranges = tuple(parse_range(full, k, v) for k, v in options.items() if k != "episodes")
    return GymnaxEnv(name, ranges, episodes)


def check(full: str, rest: str) -> None:
    """Raise the UsageError of a bad `gymnax:REST` (missing extra, unknown name or option)
    without building the environment."""
    gymnax = gymnax_module()
    name, options = split_options(full, rest, None)
    if name not in gymnax.registered_envs:
        raise UsageError(f"unknown gymnax environment {name!r} in {full!r}; choose one of: "
                         f"{', '.join(gymnax.registered_envs)}")
    int_option(full, options, "episodes", 1)
    for k, v in options.items():
        if k != "episodes":
            parse_range(full, k, v)


def reference_returns(full: str, rest: str) -> dict[str, float]:
    """Reference lines of `gymnax:REST`: measured ones for default settings only."""
    return REFERENCE_RETURNS.get(rest, {})
