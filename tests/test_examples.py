"""The examples (examples/): each runs in its own process at a tiny budget, from a temporary
working directory, and writes what its docstring says; none needs anything outside the public
API (the top-level `hypermeta` names and the documented extension modules), and nothing under
src/ refers to them.

The processes run two at a time (a 2-core CPU compiles two programs at once), longest first,
in one module fixture; each test then checks one example's files."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import hypermeta

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

PUBLIC_MODULES = {"hypermeta", "hypermeta.envs.base", "hypermeta.envs.host", "hypermeta.networks.sequence",
                  "hypermeta.methods.base", "hypermeta.config"}
"""What an example may import from hypermeta: the package's top-level names (`hypermeta.__all__`)
and the modules docs/extending.md documents as extension points."""


def _cli() -> list[str]:
    """The `hypermeta` command of this environment (the console script beside the interpreter)."""
    script = Path(sys.executable).parent / "hypermeta"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hypermeta.cli"]


@dataclass(frozen=True)
class Job:
    argv: list[str]
    env: dict[str, str]


# Tiny budgets: a few updates of 4 or 8 environments (Grid-World: 8 x 60 = 480 frames per
# update; the generic family of the example environments: 4 x 200 = 800).
GRID = ["--num-envs", "8", "--frames", "1440"]
GENERIC = ["--num-envs", "4", "--frames", "1600"]
JOBS: dict[str, Job] = {  # longest first
    "sequence_model": Job([sys.executable, str(EXAMPLES / "sequence_model.py"), *GRID, "--out", "out"], {}),
    "new_method": Job([sys.executable, str(EXAMPLES / "new_method.py"), *GRID, "--pretrain-updates", "1",
                       "--out", "out"], {}),
    # The notebook takes its budget from the environment variable every example reads.
    "notebook": Job([sys.executable, str(EXAMPLES / "notebook.py"), "--num-envs", "8", "--out", "out"],
                    {"HYPERMETA_EXAMPLE_FRAMES": "1440"}),
    "gymnasium_env": Job([sys.executable, str(EXAMPLES / "gymnasium_env.py"), *GENERIC, "--out", "out"], {}),
    "jax_env": Job([sys.executable, str(EXAMPLES / "jax_env" / "train.py"), *GENERIC, "--out", "out"], {}),
    # The command documented in examples/jax_env: the environment named MODULE:FACTORY, found on PYTHONPATH.
    "jax_env_cli": Job([*_cli(), "train", "--env", "point_goal:make", "--method", "rnn-hn", "--frames", "1600",
                        "--ppo.num-envs", "4", "--seeds", "0", "--out", "out"],
                       {"PYTHONPATH": str(EXAMPLES / "jax_env")}),
}


@dataclass(frozen=True)
class Done:
    cwd: Path
    returncode: int
    output: str
    seconds: float


def _run(name: str, job: Job, base: Path) -> Done:
    cwd = base / name
    cwd.mkdir()
    env = {**os.environ, **job.env}  # the tests' XLA flags and compile-cache setting (conftest.py)
    if "PYTHONPATH" in job.env and os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join([job.env["PYTHONPATH"], os.environ["PYTHONPATH"]])
    started = time.monotonic()
    proc = subprocess.run(job.argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return Done(cwd, proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict[str, Done]:
    """Every example run once, two at a time."""
    base = tmp_path_factory.mktemp("examples")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, name, job, base) for name, job in JOBS.items()}
        done = {name: f.result() for name, f in futures.items()}
    print(f"examples: {time.monotonic() - started:.0f} s; " + ", ".join(f"{n} {d.seconds:.0f} s" for n, d in done.items()))
    return done


def _finished(d: Done) -> None:
    assert d.returncode == 0, d.output[-4000:]


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    """A finished run directory's metrics.csv rows (checking the files every run writes)."""
    for name in ("config.json", "metrics.csv", "summary.json", "curve.png"):
        assert (run_dir / name).is_file(), f"{run_dir / name} missing"
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["meta_episode_return"] not in ("", "nan") for r in rows)
    return rows


def _config(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())


def test_jax_env_trains_from_python(ran):
    d = ran["jax_env"]
    _finished(d)
    run = d.cwd / "out"
    assert int(_metrics(run)[-1]["frames"]) == 1600
    assert _config(run)["env"] == "point-goal" and _config(run)["method"] == "rnn-hn"
    assert "return per trial" in d.output


def test_jax_env_trains_from_the_command_line(ran):
    d = ran["jax_env_cli"]
    _finished(d)
    run = d.cwd / "out"
    _metrics(run)
    assert _config(run)["env"] == "point_goal:make"


def test_gymnasium_env_trains_through_the_host_collector(ran):
    d = ran["gymnasium_env"]
    _finished(d)
    run = d.cwd / "out"
    rows = _metrics(run)
    assert _config(run)["env"] == "swapped-cartpole" and _config(run)["ppo"]["time_limit"] == "proper"
    assert 0 < float(rows[-1]["meta_episode_return"]) <= 200  # +1 per step, at most 2 x 100 steps
    assert not [c for c in rows[-1] if "success" in c]  # CartPole has no notion of success: no columns of zeros


def test_sequence_model_trains_with_rnn_hn_and_vi_hn(ran):
    d = ran["sequence_model"]
    _finished(d)
    assert re.search(r"parallel form vs steps, largest difference \S+", d.output)
    for method in ("rnn-hn", "vi-hn"):
        run = d.cwd / "out" / method
        _metrics(run)
        model = _config(run)["model"]
        assert (_config(run)["method"], model["sequence"], model["sequence_options"]) == (method, "min-gru",
                                                                                       ["features=64"])


def test_new_method_trains_past_its_pre_training(ran):
    d = ran["new_method"]
    _finished(d)
    run = d.cwd / "out"
    rows = _metrics(run)
    assert _config(run)["method"] == "rnn-hn-kaiming-ti"
    assert "task_inference_loss" in rows[-1]  # the auxiliary loss the method composes in
    assert int(rows[-1]["pretrain_frames"]) < int(rows[-1]["frames"])  # meta-training followed pre-training


def test_notebook_trains_evaluates_plays_and_plots(ran):
    d = ran["notebook"]
    _finished(d)
    out = d.cwd / "out"
    assert int(_metrics(out / "run")[-1]["frames"]) == 1440  # the budget from HYPERMETA_EXAMPLE_FRAMES
    (evaluation,) = (out / "run" / "eval").iterdir()
    assert (evaluation / "trials.csv").is_file()
    assert json.loads((evaluation / "summary.json").read_text())["trials"] == 100
    assert (out / "learning_curve.png").stat().st_size > 1000
    played = re.search(r"goal \(\d, \d\): episode returns \[(.*)\]", d.output)
    assert played and len(played.group(1).split(",")) == 4  # one trial of 4 episodes in a plain loop


# --------------------------------------------------------------------------- public API only


def _example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*.py") if "build" not in p.relative_to(EXAMPLES).parts)  # pip's build/


def test_every_example_is_listed_here_and_documented():
    """Each example file is run above (or is a module an example imports, or the plug-in package
    that tests/test_plugins.py installs and trains), has a docstring saying how to run it, and
    docs/extending.md walks through it."""
    scripts = {Path(j.argv[1]).relative_to(EXAMPLES).as_posix() for j in JOBS.values() if j.argv[1].endswith(".py")}
    imported = {"jax_env/point_goal.py", "plugin_package/hypermeta_bandit/__init__.py"}
    assert {p.relative_to(EXAMPLES).as_posix() for p in _example_files()} == scripts | imported
    guide = (ROOT / "docs" / "extending.md").read_text()
    for path in _example_files():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and any(how in doc for how in ("python examples/", "--env point_goal:make", "pip install -e examples/")), path
        assert f"examples/{path.relative_to(EXAMPLES).as_posix()}" in guide, path


def private_uses(files: list[Path]) -> list[str]:
    """"FILE:LINE NAME" for every hypermeta import of `files` that is neither a top-level public
    name nor a documented extension module, and every `hypermeta.X` not in `hypermeta.__all__`."""
    public = set(hypermeta.__all__)
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "hypermeta" and a.name not in PUBLIC_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hypermeta":
                if node.module not in PUBLIC_MODULES:
                    names = [str(node.module)]
                elif node.module == "hypermeta":
                    names = [f"hypermeta.{a.name}" for a in node.names if a.name not in public]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "hypermeta":
                names = [f"hypermeta.{node.attr}"] if node.attr not in public else []
            found += [f"{path.name}:{node.lineno} {name}" for name in names]
    return found


def test_examples_use_only_the_public_api():
    assert private_uses(_example_files()) == []


def test_the_public_api_check_finds_private_names(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import hypermeta\nimport hypermeta.training.loop\nfrom hypermeta.api import defaults\n"
                   "from hypermeta import configure, Learner\nfrom hypermeta.envs.base import Environment\n"
                   "hypermeta.train(hypermeta.api.defaults())\n")
    assert private_uses([bad]) == ["bad.py:2 hypermeta.training.loop", "bad.py:3 hypermeta.api",
                                   "bad.py:4 hypermeta.Learner", "bad.py:6 hypermeta.api"]


def test_nothing_under_src_refers_to_the_examples():
    """The package stands without its examples: no import of them, no path into examples/."""
    reference = re.compile(r"""import\s+examples\b|from\s+examples\b|\bexamples[/\\.]\w|["']examples["']""")
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "src").rglob("*")) if p.is_file() and p.suffix in
            (".py", ".toml", ".txt", ".cfg", ".json", ".md")
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if reference.search(line)]
    assert hits == []
