"""The persistent compilation cache (hypermeta.compile_cache): reused by a second process,
identical results, unusable directories and corrupt entries as one warning line.

Processes are fresh interpreters (JAX opens its cache once per process); the suite itself
runs with HYPERMETA_COMPILE_CACHE=off (conftest.py), these tests opt in for their children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hypermeta import compile_cache
from hypermeta.compile_cache import MARKER, check_dir, default_dir

# A child process: sets the cache up as every command does, runs `program`, prints one JSON
# line with the JAX programs it loaded from the cache ("hits") and compiled ("misses").
CHILD = r"""
import json, logging, sys
hits, misses = [], []
class Seen(logging.Handler):
    def emit(self, record):
        text = record.getMessage()
        if text.startswith("Persistent compilation cache hit for '"):
            hits.append(text.split("'")[1])
        elif text.startswith("PERSISTENT COMPILATION CACHE MISS for '"):
            misses.append(text.split("'")[1])
log = logging.getLogger("jax._src.compiler")
log.setLevel(logging.DEBUG)
log.addHandler(Seen())
log.propagate = False
import jax
from hypermeta.compile_cache import setup
path = setup()
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # the toy programs compile fast
result = None
PROGRAM
print(json.dumps({"path": str(path) if path else None, "hits": hits, "misses": misses, "result": result}))
"""

TOY = r"""
import jax.numpy as jnp
def f(x):
    for _ in range(20):
        x = jnp.tanh(x @ x + 1.0)
    return x.sum()
result = float(jax.jit(f)(jnp.linspace(0.0, 1.0, 16).reshape(4, 4)))
"""

# Two updates of a tiny RNN on Grid-World through hypermeta.training.loop.train (which sets
# the cache up itself), then its metrics.csv rows without the wall-clock column.
TRAINING = r"""
import csv, tempfile
from pathlib import Path
from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.training.loop import train
cfg = TrainConfig(env="grid-world", method="rnn", frames=120, seeds=(3,), lr=(1e-3,), eval_interval=2, eval_trials=2,
                  model=ModelConfig(gru=GRUConfig(8), policy_state_embed=4, policy_hidden=(8,), latent_dim=2),
                  ppo=PPOConfig(num_envs=2, num_steps=30, minibatches=2))
out = Path(tempfile.mkdtemp()) / "run"
train(cfg, out, show_progress=False)
with open(out / "metrics.csv") as f:
    result = [{k: v for k, v in row.items() if k != "frames_per_second"} for row in csv.DictReader(f)]
"""


def run_child(program: str, cache: str | None, tmp_path: Path) -> tuple[dict, str]:
    """(the child's JSON line, its stderr); HYPERMETA_COMPILE_CACHE=`cache` (None: unset) and
    XDG_CACHE_HOME in `tmp_path`, so nothing is written to the home directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYPERMETA_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_PLATFORMS="cpu")
    if cache is not None:
        env["HYPERMETA_COMPILE_CACHE"] = cache
    proc = subprocess.run([sys.executable, "-c", CHILD.replace("PROGRAM", program)], env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def warnings_of(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "UserWarning" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("hypermeta: warning:")]


def test_second_process_loads_training_from_cache_with_identical_metrics(tmp_path):
    cache = tmp_path / "cache"
    first, err1 = run_child(TRAINING, str(cache), tmp_path)
    assert first["path"] == str(cache.resolve()) and (cache / MARKER).is_file()
    entries = sorted(p.name for p in cache.glob("*-cache"))
    assert any(name.startswith("jit_chunk-") for name in entries), entries
    assert "jit_chunk" in first["misses"] and not first["hits"]
    second, err2 = run_child(TRAINING, str(cache), tmp_path)
    assert "jit_chunk" in second["hits"] and "jit_chunk" not in second["misses"]
    assert not warnings_of(err1) and not warnings_of(err2)
    assert len(first["result"]) == 1 and first["result"] == second["result"]  # every metric, bit for bit


def test_default_directory_and_off(tmp_path):
    on, _ = run_child(TOY, None, tmp_path)
    assert Path(on["path"]) == (tmp_path / "xdg" / "hypermeta" / "jax").resolve()
    assert any(Path(on["path"]).glob("jit_f-*-cache"))
    off, err = run_child(TOY, "off", tmp_path / "other")
    assert off["path"] is None and not (tmp_path / "other" / "xdg").exists() and not warnings_of(err)
    assert off["result"] == on["result"]


def test_corrupt_entry_is_replaced_with_one_warning(tmp_path):
    cache = tmp_path / "cache"
    clean, _ = run_child(TOY, str(cache), tmp_path)
    (entry,) = cache.glob("jit_f-*-cache")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a writer killed half-way
    again, err = run_child(TOY, str(cache), tmp_path)
    (line,) = warnings_of(err)
    assert "corrupt compilation cache entry" in line and "removed" in line
    assert again["result"] == clean["result"] and "jit_f" in again["misses"]
    third, err = run_child(TOY, str(cache), tmp_path)  # written again, whole
    assert "jit_f" in third["hits"] and not warnings_of(err) and third["result"] == clean["result"]


def test_unusable_directory_runs_without_cache(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result, err = run_child(TOY, str(not_a_dir), tmp_path)
    (line,) = warnings_of(err)
    assert result["path"] is None and "is not a directory" in line and "compiling without a cache" in line
    assert isinstance(result["result"], float) and not_a_dir.read_text() == "x"


def test_check_dir(tmp_path):
    assert check_dir(tmp_path / "new" / "jax") == "" and (tmp_path / "new" / "jax" / MARKER).is_file()
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("")
    assert "holds other files (thesis.tex)" in check_dir(foreign) and not (foreign / MARKER).exists()
    jax_cache = tmp_path / "jax-own"  # a directory JAX itself filled: adopted
    jax_cache.mkdir()
    (jax_cache / "jit_f-0123-cache").write_bytes(b"")
    assert check_dir(jax_cache) == "" and (jax_cache / MARKER).is_file()
    assert "cannot be created" in check_dir(Path("/proc/hypermeta-no-such-dir/jax"))
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert "not writable" in check_dir(locked)
        finally:
            locked.chmod(0o700)


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_dir() == tmp_path / "hypermeta" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_dir() == Path.home() / ".cache" / "hypermeta" / "jax"


def test_suite_runs_without_hypermeta_cache():
    """conftest.py: the tests write no cache to the home directory (their own session cache aside)."""
    assert os.environ.get("HYPERMETA_COMPILE_CACHE") == "off"
    assert compile_cache.requested() == "off"


@pytest.mark.parametrize("setting", ["off", " OFF "])
def test_off_spellings(setting):
    assert compile_cache.requested(setting).lower() == "off"


def test_explicit_setting_is_exported(monkeypatch):
    """--compile-cache goes to HYPERMETA_COMPILE_CACHE for the processes this one starts (Ray's
    local workers); without a setting, a second call changes nothing."""
    monkeypatch.setattr(compile_cache, "_state", {"done": False, "path": None})
    monkeypatch.setenv(compile_cache.ENV_VAR, "/elsewhere")
    assert compile_cache.setup("off") is None and os.environ[compile_cache.ENV_VAR] == "off"
    monkeypatch.setenv(compile_cache.ENV_VAR, "/elsewhere")
    assert compile_cache.setup() is None and os.environ[compile_cache.ENV_VAR] == "/elsewhere"


def test_every_compiling_command_has_the_option():
    import dataclasses

    from hypermeta import cli
    from hypermeta.config import TrainConfig

    for args in (cli.TrainArgs, cli.SweepArgs, cli.ReproduceArgs, cli.EvalArgs):
        assert "compile_cache" in {f.name for f in dataclasses.fields(args)}, args
    assert "compile_cache" not in {f.name for f in dataclasses.fields(TrainConfig)}  # not in config.json
