"""The driver's view of a sweep on a cluster: one live line on the terminal and a status file.

Cells report nothing to the driver while they train: the driver reads what they write on the
shared storage (the last row of each running cell's metrics.csv, the attempt records in
OUT/.cluster/cells/) and what Ray says about finished tasks. OUT/sweep-status.json is
rewritten atomically on every refresh, so a script can poll it:

    {"finished": false, "cells": {"total", "done", "running", "waiting", "failed"},
     "frames": {"done", "total"}, "frames_per_second", "eta_seconds",
     "cell_states": [{"name", "path", "runs", "state", "frames", "frames_total", "attempts",
                      "node", "start_update", "error"}, ...],
     "nodes_without_storage": {NODE_ID: why}, ...}

A cell is 'waiting' until a worker starts it, 'running' from then on (also between the
retries of a lost worker), then 'done' or 'failed'; cells a previous driver finished are
'done' from the start and count as done frames, not towards frames/s.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rich.live import Live
from rich.text import Text

from hypermeta.rundir import atomic_write_json
from hypermeta.sweeps.cell_task import read_record
from hypermeta.sweeps.cells import Cell

STATUS_FILE = "sweep-status.json"


@dataclass
class CellState:
    """What the driver knows about one cell."""

    cell: Cell
    state: str = "waiting"
    """waiting, running, done or failed."""
    frames: int = 0
    attempts: int = 0
    """Attempts started by this driver (more than 1: Ray retried a lost worker)."""
    node: str = ""
    start_update: int = 0
    """The update the last attempt started from (> 0: resumed from a checkpoint)."""
    error: str = ""


def last_frames(cell: Cell) -> int:
    """Frames the cell's runs have trained, from the last complete row of its metrics.csv."""
    path = cell.path / "metrics.csv"
    try:
        with open(path, "rb") as f:
            header = f.readline().decode().rstrip("\n").split(",")
            size = f.seek(0, 2)
            f.seek(max(0, size - 65536))
            tail = f.read().decode(errors="replace")
    except OSError:
        return 0
    lines = [ln for ln in tail[: tail.rfind("\n")].split("\n") if ln]
    if not lines or "frames" not in header:
        return 0
    values = lines[-1].split(",")
    try:
        return int(float(values[header.index("frames")])) * len(cell.cfg.runs)
    except (ValueError, IndexError):  # the header is the last line, or a torn row
        return 0


@dataclass
class SweepProgress:
    """Cell states, totals, the live line and the status file of one driver session."""

    cells: list[Cell]
    out: Path
    session: str
    address: str
    show: bool = True
    states: dict[str, CellState] = field(init=False)
    nodes_without_storage: dict[str, str] = field(default_factory=dict)
    """Ray nodes found not to see the storage (node id -> why), given no more cells."""
    _history: deque = field(init=False)
    _live: Live | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.states = {c.name: CellState(c) for c in self.cells}
        self._history = deque(maxlen=120)
        self._started = time.time()

    def __enter__(self) -> SweepProgress:
        if self.show:
            self._live = Live(Text(self._lines()), refresh_per_second=2, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.refresh(finished=exc[0] is None)
        if self._live is not None:
            self._live.stop()
            if not self._live.console.is_terminal:  # the last view printed once, without its line end
                self._live.console.line()

    def say(self, line: str) -> None:
        """One line above the live view (or on stdout without it)."""
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    @property
    def total_frames(self) -> int:
        return sum(c.frames for c in self.cells)

    def skipped(self, cell: Cell) -> None:
        """A cell a previous driver finished."""
        self.states[cell.name].state, self.states[cell.name].frames = "done", cell.frames

    def done(self, cell: Cell, result: dict) -> None:
        s = self.states[cell.name]
        self._read_attempts(s)  # a cell may start and end between two refreshes
        s.state, s.frames, s.node = "done", cell.frames, result.get("node", s.node)
        self.say(f"{cell.name}: done on {s.node}" + (f" (resumed from update {s.start_update})" if s.start_update else ""))

    def failed(self, cell: Cell, error: str) -> None:
        s = self.states[cell.name]
        self._read_attempts(s)
        s.state, s.error = "failed", error
        self.say(f"{cell.name}: FAILED: {error}")

    def _read_attempts(self, s: CellState) -> None:
        """This session's attempts of a cell, from its record on the shared storage."""
        attempts = [a for a in read_record(self.out, s.cell.name)["attempts"] if a["session"] == self.session]
        if attempts:
            s.state, s.attempts = "running", len(attempts)
            s.node, s.start_update = attempts[-1]["node"], attempts[-1]["start_update"]

    def _read_cells(self) -> None:
        """Attempts and frames of the cells not finished yet, from the shared storage."""
        for s in self.states.values():
            if s.state not in ("done", "failed"):
                self._read_attempts(s)
                if s.state == "running":
                    s.frames = last_frames(s.cell)

    def counts(self) -> dict[str, int]:
        found = {k: 0 for k in ("done", "running", "waiting", "failed")}
        for s in self.states.values():
            found[s.state] += 1
        return {"total": len(self.states), **found}

    def _speed(self) -> tuple[float | None, float | None]:
        """Frames/s over the last minute or so (frames trained by this driver's cells) and the ETA."""
        now, done = time.time(), sum(s.frames for s in self.states.values())
        self._history.append((now, done))
        t0, f0 = self._history[0]
        if now - t0 < 1 or done == f0:
            return None, None
        fps = (done - f0) / (now - t0)
        remaining = sum(s.cell.frames - s.frames for s in self.states.values() if s.state in ("waiting", "running"))
        return fps, remaining / fps

    def _lines(self, fps: float | None = None, eta: float | None = None) -> str:
        """The live view: cells on one line, frames on the next (each fits 80 columns)."""
        c = self.counts()
        done, total = sum(s.frames for s in self.states.values()), max(self.total_frames, 1)
        speed = "-" if fps is None else f"{fps:,.0f}"
        left = "-" if eta is None else f"{int(eta) // 3600}:{time.strftime('%M:%S', time.gmtime(eta))}"
        return (f"cells: {c['done']} done, {c['running']} running, {c['waiting']} waiting, {c['failed']} failed "
                f"(of {c['total']})\nframes: {done / 1e6:.2f}M/{total / 1e6:.2f}M ({100 * done / total:.0f}%), "
                f"{speed} frames/s over the cluster, ETA {left}")

    def refresh(self, finished: bool = False) -> None:
        """Read the cells' progress, redraw the live line, rewrite the status file."""
        self._read_cells()
        fps, eta = self._speed()
        if self._live is not None:
            self._live.update(Text(self._lines(fps, eta)))
        self.write_status(fps, eta, finished)

    def write_status(self, fps: float | None, eta: float | None, finished: bool) -> None:
        atomic_write_json(self.out / STATUS_FILE, {
            "address": self.address, "out": str(self.out), "session": self.session,
            "started": self._started, "updated": time.time(), "finished": finished,
            "cells": self.counts(),
            "frames": {"done": sum(s.frames for s in self.states.values()), "total": self.total_frames},
            "frames_per_second": fps, "eta_seconds": eta,
            "cell_states": [{"name": s.cell.name, "path": str(s.cell.path), "runs": len(s.cell.cfg.runs),
                             "state": s.state, "frames": s.frames, "frames_total": s.cell.frames,
                             "attempts": s.attempts, "node": s.node, "start_update": s.start_update,
                             "error": s.error} for s in self.states.values()],
            "nodes_without_storage": self.nodes_without_storage,
        })
