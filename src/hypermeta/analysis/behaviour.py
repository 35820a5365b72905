"""Pictures of what a policy does (`hypermeta eval --render N`): N trials per run.

* Grid-worlds: one PNG per trial, one panel per episode with the agent's path drawn on the
  grid (start, goal, visited cells and how often), so exploration then exploitation shows;
  for VariBAD-type methods a second row with the belief over goal cells at chosen steps (the
  reward decoder's per-cell probability that the goal is there, from the latent's mean), as in
  the VariBAD paper's grid figures.
* MC-LS: an animated GIF of the agent's views, one frame per step, captioned with the
  episode, step, action and reward (the signal colour and the final turn are visible).
* MuJoCo tasks (MJX) and Meta-World: an MP4 of the trial rendered with MuJoCo's own renderer,
  headless (EGL, else OSMesa), plus one frame as a PNG.

The data drawn come from the evaluation itself (`hypermeta.evaluation` records them):
`JaxCollector.evaluate_trials(record=True)` for JAX environments, each of which draws its own
trials with the pieces here (`EnvironmentBase.prepare_pictures`, `draw_trial`), and
`HostCollector.evaluate_run(on_step=...)` for host ones, filmed by `hypermeta.evaluation`.
"""

from __future__ import annotations

import importlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt
import numpy as np

from hypermeta.errors import UsageError
from hypermeta.networks.decoders import Decoders
from hypermeta.rundir import atomic_write_bytes

ACTIONS_MC_LS = ("LEFT", "FORWARD", "RIGHT")
VIDEO_SIZE = 320


# --- grid-worlds -------------------------------------------------------------------------


@dataclass(frozen=True)
class GridTrial:
    """What a grid-world trial picture draws (cells are (x, y), y up)."""

    size: int
    goal: tuple[int, int]
    paths: list[list[tuple[int, int]]]
    """Per episode: the cells from its first observation to its last step's end."""
    returns: list[float]
    beliefs: list[tuple[int, int, np.ndarray]]
    """(episode, step within it, (size, size) goal probabilities indexed [y, x]); empty
    for methods without a per-cell reward decoder."""


def trial_steps(steps: dict, t: int) -> dict[str, Any]:
    """The recorded steps of trial `t` (of a (T, trials, ...) record), only those that count."""
    one = jax.tree.map(lambda x: np.asarray(x)[:, t], steps)
    keep = one["active"].astype(bool)
    return jax.tree.map(lambda x: x[keep], one)


def grid_trial(env: Any, steps: dict, t: int, beliefs: np.ndarray | None = None) -> GridTrial:
    """The drawn data of trial `t` of a `GridWorld` `env`; `beliefs`: (T, cells) goal probabilities of every recorded step."""
    trial = trial_steps(steps, t)
    episode, cell = trial["trial_state"].episode, trial["info"]["cell"]
    start = trial["trial_state"].env_state.pos
    paths, returns, shown = [], [], []
    for e in range(int(episode.max()) + 1):
        idx = np.flatnonzero(episode == e)
        paths.append([tuple(int(v) for v in start[idx[0]])] + [(int(c) % env.size, int(c) // env.size) for c in cell[idx]])
        returns.append(float(trial["reward"][idx].sum()))
        # The first episode's belief at a few of its steps (exploration), later episodes' at their start.
        picks = [s for s in (0, 1, 2, 4, 7, 11) if s < len(idx)] if e == 0 else [0]
        shown += [(e, s, idx[s]) for s in picks]
    goal = tuple(int(v) for v in trial["trial_state"].task[0])
    maps = [] if beliefs is None else [(e, s, _keep(beliefs, steps, t)[i].reshape(env.size, env.size))
                                       for e, s, i in shown]
    return GridTrial(env.size, goal, paths, returns, maps)


def _keep(values: np.ndarray, steps: dict, t: int) -> np.ndarray:
    """Per-step values (T, trials, ...) of trial `t` at the steps that count."""
    return np.asarray(values)[:, t][np.asarray(steps["active"])[:, t].astype(bool)]


def goal_beliefs(agent, params, latents: np.ndarray) -> np.ndarray | None:
    """(..., cells) probability that the goal is in each cell, from the reward decoder at the
    latents' means; None for methods without a per-cell reward decoder."""
    if agent.decoders is None or not agent.num_cells or not agent.inference.decode_reward:
        return None
    mean = np.asarray(latents)[..., : agent.model.latent_dim]
    logits = agent.decoder(params, Decoders.reward_logits, mean)
    return np.asarray(jax.nn.sigmoid(logits))


def _draw_grid(ax, data: GridTrial, visits: np.ndarray | None = None, title: str = "") -> None:
    """The grid with the start cell, the goal and (optionally) a heat map of `visits` [y, x]."""
    n = data.size
    if visits is not None:
        ax.imshow(visits, origin="lower", cmap="Blues", vmin=0, vmax=max(1.0, float(visits.max())),
                  extent=(-0.5, n - 0.5, -0.5, n - 0.5))
    ax.set_xticks(np.arange(-0.5, n), [])
    ax.set_yticks(np.arange(-0.5, n), [])
    ax.grid(color="0.7", lw=0.6)
    ax.tick_params(length=0)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(-0.5, n - 0.5)
    ax.text(0, 0, "S", ha="center", va="center", fontsize=11, color="green", weight="bold")
    ax.plot(*data.goal, marker="*", ms=16, color="gold", mec="black", mew=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")


def draw_grid_trial(data: GridTrial, title: str) -> bytes:
    """PNG of a grid-world trial: the path of each episode and, if any, the belief maps."""
    k, b = len(data.paths), len(data.beliefs)
    cols = max(k, b)
    fig = plt.figure(figsize=(2.3 * cols, 2.6 * (2 if b else 1) + 0.3))
    for e, path in enumerate(data.paths):
        ax = fig.add_subplot(2 if b else 1, cols, e + 1)
        visits = np.zeros((data.size, data.size))
        for x, y in path:
            visits[y, x] += 1
        _draw_grid(ax, data, visits, f"episode {e + 1}: return {data.returns[e]:.1f}")
        xy = np.array(path, float) + np.linspace(-0.12, 0.12, len(path))[:, None]  # later steps shifted: loops show
        ax.plot(xy[:, 0], xy[:, 1], "-", color="C3", lw=1.2, alpha=0.8)
        ax.plot(*xy[-1], "o", color="C3", ms=5)
    for i, (e, s, probs) in enumerate(data.beliefs):
        ax = fig.add_subplot(2, cols, cols + i + 1)
        ax.imshow(probs, origin="lower", cmap="Reds", vmin=0, vmax=1, extent=(-0.5, data.size - 0.5, -0.5, data.size - 0.5))
        _draw_grid(ax, data, None, f"belief: ep {e + 1}, step {s}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# --- MC-LS -----------------------------------------------------------------------------------


def mc_ls_frames(env: Any, steps: dict, t: int, scale: int = 12) -> list[np.ndarray]:
    """One captioned RGB frame (uint8) per step of trial `t` of an `MCLS` `env`: the view the agent acted on."""
    from PIL import Image, ImageDraw

    trial = trial_steps(steps, t)
    h, w, c = env.image_shape
    views = ((trial["obs"][:, : h * w * c].reshape(-1, h, w, c) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    signal = "green: turn right" if trial["trial_state"].task[0, 0] > 0 else "red: turn left"
    frames, total, previous, step = [], 0.0, -1, 0
    for i, view in enumerate(views):
        episode = int(trial["trial_state"].episode[i])
        step = 0 if episode != previous else step + 1
        previous = episode
        total += float(trial["reward"][i])
        image = Image.new("RGB", (w * scale, h * scale + 40), "white")
        image.paste(Image.fromarray(view).resize((w * scale, h * scale), Image.NEAREST))
        text = ImageDraw.Draw(image)
        text.text((3, h * scale + 2), f"ep {episode + 1} step {step} {ACTIONS_MC_LS[int(trial['action'][i])]}", fill="black")
        text.text((3, h * scale + 14), f"r {float(trial['reward'][i]):+.1f} total {total:.1f}", fill="black")
        text.text((3, h * scale + 26), f"signal {signal}", fill="black")
        frames.append(np.asarray(image))
    return frames


def gif_bytes(frames: list[np.ndarray], ms_per_frame: int = 80) -> bytes:
    """An animated GIF of the frames, looping."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return buf.getvalue()


# --- MuJoCo --------------------------------------------------------------------------------------

GL_HELP = ("MuJoCo's renderer needs headless OpenGL: EGL (a GPU driver, or Mesa: apt-get install libegl1 "
           "libgl1-mesa-dri) or OSMesa (apt-get install libosmesa6); or set MUJOCO_GL to one that works")


def headless_gl() -> str:
    """Point MuJoCo's renderer at a headless OpenGL context: MUJOCO_GL's choice if it is egl or
    osmesa, else EGL, else OSMesa. Returns the one chosen; a UsageError (GL_HELP) if none works.

    MuJoCo reads MUJOCO_GL once, when it is first imported, and its default (GLFW) needs a
    display; the renderer takes its context class from `mujoco.gl_context.GLContext`, so the
    headless one is set there, whenever mujoco was imported."""
    from mujoco import gl_context

    wanted = os.environ.get("MUJOCO_GL", "").lower()
    tried = []
    for name in [wanted] if wanted in ("egl", "osmesa") else ["egl", "osmesa"]:
        platform = os.environ.get("PYOPENGL_PLATFORM")
        try:
            context_class = importlib.import_module(f"mujoco.{name}").GLContext
            context_class(16, 16).free()  # fails here when the library or a device is missing
        except Exception as e:  # ImportError, OSError, EGL/OSMesa errors: try the next one
            tried.append(f"{name}: {type(e).__name__} {str(e)[:80]}".strip())
            if platform is None:
                os.environ.pop("PYOPENGL_PLATFORM", None)
            continue
        gl_context.GLContext = context_class
        return name
    raise UsageError(f"--render: no headless OpenGL found ({'; '.join(tried)}). {GL_HELP}")


def render_mujoco(model: Any, qpos: np.ndarray, size: int = VIDEO_SIZE) -> list[np.ndarray]:
    """RGB frames of the poses `qpos` (T, nq) of `model`, from a camera tracking the root body."""
    import mujoco

    headless_gl()
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = 1
    # 4 m away, from the side and a little above (the models' extent includes the floor: no use here).
    camera.distance, camera.elevation, camera.azimuth = 4.0, -15.0, 90.0
    renderer = mujoco.Renderer(model, size, size)
    try:
        frames = []
        for pose in qpos:
            data.qpos[:] = pose
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            frames.append(renderer.render().copy())
        return frames
    finally:
        renderer.close()  # explicitly: a renderer left to the garbage collector at exit complains


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """An MP4 of the frames (imageio with ffmpeg: the `render` extra)."""
    try:
        import imageio.v3 as iio
        import imageio_ffmpeg  # noqa: F401  (imageio's MP4 writer)
    except ImportError as err:
        raise UsageError(f"--render writes MP4 videos with imageio and ffmpeg ({err.name} is missing): "
                         "pip install 'hypermeta[render]'") from None
    buf = iio.imwrite("<bytes>", np.stack(frames), extension=".mp4", fps=max(1, round(fps)), macro_block_size=1)
    atomic_write_bytes(path, buf)


def png_bytes(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def mujoco_of(env: Any) -> tuple[Any, Any] | None:
    """(MjModel, MjData) of a host env, found by following its `.env` / `.unwrapped` wrappers."""
    for _ in range(8):
        if hasattr(env, "model") and hasattr(env, "data") and type(env.model).__name__ == "MjModel":
            return env.model, env.data
        env = getattr(env, "env", None) or getattr(env, "unwrapped", None)
        if env is None:
            return None
    return None


def save(path: Path, data: bytes) -> Path:
    """Write a picture atomically; returns its path."""
    atomic_write_bytes(path, data)
    return path
