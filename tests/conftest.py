"""Shared fixtures."""

from __future__ import annotations

import signal

import jax
import pytest


@pytest.fixture
def sigint_enabled():
    """SIGINT raising KeyboardInterrupt as in a terminal, even where the test process was
    started ignoring it (a background job, nohup); the previous handler comes back after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
    """A JAX compilation cache for this module, so a resumed run reuses the compiled chunk.

    Only a speed-up: results do not depend on it. It uses a private JAX helper to
    re-read the settings; without it the tests are just slower.
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
    for n, v in zip(names, (str(cache_dir), 0.0, 0)):
        jax.config.update(n, v)
    cc.reset_cache()
    yield cache_dir
    for n, v in old.items():
        jax.config.update(n, v)
    cc.reset_cache()
