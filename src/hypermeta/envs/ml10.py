"""Meta-World ML10 (paper appendix 8.4), stepped in Python through the host collector.

Meta-World has no JAX/MJX port, so ML10 is a `HostEnvironment` over the maintained
`metaworld` package (v3, MuJoCo 3.3.0; the optional extra `hypermeta[metaworld]`).

* Tasks: `metaworld.ML10(seed=benchmark_seed)` defines 50 goal instances for each of 10
  training classes (reach, push, pick-place, ...) and 5 test classes. A trial is one class
  and one instance; its goal (and object positions) stay fixed for both episodes.
* Training: each environment cycles through the 10 training classes in a shuffled order,
  reshuffled after every pass (the reference's `mw_wrapper`), drawing a random instance
  of the class each time. Evaluation env i is bound to class i mod (number of classes),
  so evaluation trials cover the classes evenly; the "test" split uses the test classes.
* Task vector (13): one-hot of the training class (all zeros for a test class) and the 3-d
  goal position. The goal is hidden from the observation (Meta-World's ML setting: the
  last 3 of the 39 observation values are zeros), so the agent must find it by trying.
* Episodes of 500 steps, 2 per trial; observation 39 + done bit; 4 actions in [-1, 1]
  (clipped here); reward Meta-World's v2 reward; `info["success"]` per step.

We set each class env's task ourselves (`env.set_task`) at every trial start. Meta-World's
own vector envs (`gym.make_vec("Meta-World/ML10-train")`) bind one class to each env and
sample a task on reset only after `toggle_sample_tasks_on_reset(True)`; neither fits a
process that cycles through the classes, and setting the task explicitly makes the
"same task within a trial, a new one at the trial start" rule ours to test.

Each environment keeps one MuJoCo env per class it has visited (about 23 MB each, so up
to ~230 MB per training env): rebuilding one costs ~0.13 s, 10-20% of a 1,000-step trial.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from hypermeta.envs.base import Box
from hypermeta.envs.host import HostEnvironment
from hypermeta.errors import UsageError

NUM_TRAIN_CLASSES = 10


def _metaworld():
    """The metaworld module, or a UsageError saying how to install it."""
    try:
        import metaworld
    except ImportError as e:
        raise UsageError(
            "environment 'ml10' needs Meta-World, an optional extra: pip install -e \".[metaworld]\" "
            f"(or pip install metaworld==3.1.1); import failed: {e}"
        ) from None
    return metaworld


@functools.lru_cache(maxsize=4)
def _benchmark(seed: int) -> dict[str, list[tuple[str, list[Any]]]]:
    """(class name, its task instances) per split; building ML10's 750 instances takes ~10 s."""
    benchmark = _metaworld().ML10(seed=seed)
    splits = {"train": benchmark.train_classes, "test": benchmark.test_classes}
    tasks = {"train": benchmark.train_tasks, "test": benchmark.test_tasks}
    return {split: [(name, [t for t in tasks[split] if t.env_name == name]) for name in classes]
            for split, classes in splits.items()}


class ML10TaskEnv(gymnasium.Env):
    """One process of ML10: a task env (see `hypermeta.envs.host`) over a list of classes.

    `classes`: (class name, one-hot index or None, task instances). With several classes
    the env cycles through them in shuffled passes; with one it stays on that class.
    """

    def __init__(self, classes: list[tuple[str, int | None, list[Any]]], max_episode_steps: int):
        self.classes = classes
        self.max_episode_steps = max_episode_steps
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (39,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._envs: dict[str, Any] = {}
        self._order: list[int] = []
        self._current: tuple[str, int | None] | None = None
        self._t = 0

    @property
    def env(self) -> Any:
        """The Meta-World env of the current class."""
        if self._current is None:
            raise RuntimeError("call sample_task before reset: the trial has no task yet")
        return self._envs[self._current[0]]

    @property
    def class_name(self) -> str | None:
        """Meta-World's name of the current class (None before the first task)."""
        return None if self._current is None else self._current[0]

    @property
    def task(self) -> np.ndarray:
        one_hot = np.zeros(NUM_TRAIN_CLASSES, np.float32)
        if self._current is not None and self._current[1] is not None:
            one_hot[self._current[1]] = 1.0
        goal = np.zeros(3, np.float32) if self._current is None else np.asarray(self.env._target_pos, np.float32)
        return np.concatenate([one_hot, goal])

    def sample_task(self, rng: np.random.Generator) -> None:
        """The next class of the shuffled cycle, and a random instance of it."""
        if not self._order:
            self._order = list(rng.permutation(len(self.classes)))
        name, index, tasks = self.classes[self._order.pop(0)]
        if name not in self._envs:
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS

            self._envs[name] = ALL_V3_ENVIRONMENTS[name]()
        self._envs[name].set_task(tasks[rng.integers(len(tasks))])
        self._current = (name, index)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self._t = 0
        obs, info = self.env.reset(seed=seed)
        return obs.astype(np.float32), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(np.clip(action, -1.0, 1.0))
        self._t += 1
        return obs.astype(np.float32), float(reward), bool(terminated), bool(truncated or self._t >= self.max_episode_steps), info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


@dataclass(frozen=True)
class ML10(HostEnvironment):
    """Meta-World ML10 as in the paper's appendix 8.4 (see the module docstring)."""

    max_episode_steps: int = 500
    episodes_per_trial: int = 2
    reports_success: bool = True
    benchmark_seed: int = 0
    """Seed of Meta-World's fixed set of 50 task instances per class."""
    splits: tuple[str, ...] = ("train", "test")

    def __post_init__(self) -> None:
        if not 1 <= self.max_episode_steps <= 500:
            raise ValueError(f"ML10 episodes last 1 to 500 steps (Meta-World's limit), got {self.max_episode_steps}")
        _metaworld()  # fail now, with the install hint, rather than inside a vector env

    @property
    def observation_space(self) -> Box:
        return Box(low=-np.inf, high=np.inf, shape=(39,))

    @property
    def action_space(self) -> Box:
        return Box(low=-1.0, high=1.0, shape=(4,))

    @property
    def task_dim(self) -> int:
        return NUM_TRAIN_CLASSES + 3

    def make_task_env(self, split: str, evaluation_index: int | None = None) -> ML10TaskEnv:
        classes = _benchmark(self.benchmark_seed)[split]
        indexed = [(name, i if split == "train" else None, tasks) for i, (name, tasks) in enumerate(classes)]
        if evaluation_index is not None:
            indexed = [indexed[evaluation_index % len(indexed)]]
        return ML10TaskEnv(indexed, self.max_episode_steps)
