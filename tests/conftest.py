"""Shared fixtures."""

from __future__ import annotations

import os
import signal

# The tests compile hundreds of small programs and run each briefly. XLA's CPU backend
# without its LLVM optimisations compiles them about twice as fast (measured 2026-12-02: a
# VI+HN update 63 s -> 28 s) and runs the tests' tiny configurations no slower. Set before
# JAX starts its backend; nothing asserted depends on it. Benchmarks and runs keep the default.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest  # noqa: E402


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
