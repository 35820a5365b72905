"""Shared fixtures."""

from __future__ import annotations

import os
import signal

# The tests compile hundreds of small programs and run each briefly. XLA's CPU backend
# without its LLVM optimisations compiles them about twice as fast (measured 2026-12-02: a
# VI+HN update 63 s -> 28 s) and runs the tests' tiny configurations no slower; its older
# loop emitters instead of the MLIR fusion emitters take another third off (a Grid-World
# VI+HN chunk 16.4 s -> 10.3 s and its init 4.9 s -> 2.8 s, RNN+HN 9.4 s -> 6.2 s; MJX steps
# and run times unchanged). Set before JAX starts its backend; nothing asserted depends on
# it. Benchmarks and runs keep the defaults.
os.environ["XLA_FLAGS"] = " ".join([
    os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
]).strip()
# hypermeta's own compilation cache (hypermeta.compile_cache) stays off in the tests and the
# processes they start, so nothing is written to the home directory; the session cache below
# serves the tests, and tests/test_compile_cache.py turns it on for its own children.
os.environ["HYPERMETA_COMPILE_CACHE"] = "off"

import jax  # noqa: E402
import pytest  # noqa: E402

#: Test modules, longest first (measured with 2 workers on a 2-core CPU, 2026-12-02). The
#: suite runs on 2 pytest-xdist workers with `--dist loadfile` (pyproject.toml): every module
#: stays on one worker, so its module fixtures and its cached learners and jitted functions
#: are built once, and the modules are handed out in this order, so the two workers finish
#: at about the same time. Modules not listed follow in their usual order; only speed
#: depends on this list.
LONGEST_FIRST = (
    "test_inference.py", "test_sequence_models.py", "test_examples.py", "test_ray_sweep.py", "test_eval.py", "test_host.py", "test_sweep_report.py", "test_mujoco.py", "test_mc_ls.py",
    "test_learner.py", "test_cli.py", "test_grad_info.py", "test_ppo.py", "test_ml10.py", "test_compile_cache.py", "test_divergence.py",
    "test_networks.py", "test_sequence.py", "test_trial.py",
)


def pytest_collection_modifyitems(config, items):
    """On an xdist worker, order the modules as in LONGEST_FIRST (tests keep their order within
    a module; every worker computes the same order, as xdist requires)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture
def sigint_enabled():
    """SIGINT raising KeyboardInterrupt as in a terminal, even where the test process was
    started ignoring it (a background job, nohup); the previous handler comes back after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """A JAX compilation cache for the whole test session, in a temporary directory.

    Every `Learner` jits its own functions, so two instances with the same configuration
    (a resumed run, a second `train()` call, another module's identical setup) would compile
    the same programs again; through this cache the second one loads the executable instead.
    Under pytest-xdist every worker has its own base temporary directory, hence its own cache
    (JAX writes entries without locking, so workers do not share one). Nothing is kept between
    sessions: a fresh clone compiles everything once.

    Only a speed-up: results do not depend on it (an entry is the executable XLA built for an
    identical program). It uses a private JAX helper to re-read the settings; without it the
    tests are just slower.
    """
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    try:
        from jax._src import compilation_cache as cc

        old = {n: getattr(jax.config, n) for n in names}
    except (ImportError, AttributeError):
        yield None
        return
    cache_dir = tmp_path_factory.mktemp("jax-cache")
    # Programs that compile in under 0.5 s are cheaper to compile again than to store.
    for n, v in zip(names, (str(cache_dir), 0.5, 0), strict=True):
        jax.config.update(n, v)
    cc.reset_cache()
    yield cache_dir
    for n, v in old.items():
        jax.config.update(n, v)
    cc.reset_cache()


#: XLA's own optimisation level for its CPU backend (DebugOptions.xla_backend_optimization_level).
FULL_OPTIMISATION = {"xla_backend_optimization_level": 3}


@pytest.fixture(scope="session")
def compile_optimised():
    """`compile_optimised(jitted, *args)`: the jitted function compiled for `args` with XLA's
    full CPU optimisations, whatever XLA_FLAGS says above; call the result with the same
    arguments' shapes. For the few programs whose running time, not their compilation,
    dominates: the paper's networks over long rollouts, convolutions. Measured at level 0
    (2 cores): MC-LS-42's CNN, 2 updates of 4 x 50 steps, 104 s instead of 5 s; VI+HN on
    MC-LSN, 9 updates, 39 s instead of 5 s (compiling is 8 s faster)."""

    def compile_(jitted, *args):
        return jitted.lower(*args).compile(compiler_options=FULL_OPTIMISATION)

    return compile_
