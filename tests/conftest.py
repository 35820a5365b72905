"""Shared fixtures."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture
def sigint_enabled():
    """SIGINT raising KeyboardInterrupt as in a terminal, even where the test process was
    started ignoring it (a background job, nohup); the previous handler comes back after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
