"""Logging sinks and progress details that need no training (the trained ones are in test_eval.py)."""

from __future__ import annotations

import builtins
import dataclasses
import json
import struct
import sys
import time
import types
from collections import deque

import pytest

from hypermeta.analysis.plot import seeds_text
from hypermeta.config import TrainConfig
from hypermeta.errors import UsageError
from hypermeta.rundir import RunDir, run_key
from hypermeta.training.loop import _recent_returns, _return_text
from hypermeta.training.sinks import Sinks, scalars


@pytest.mark.parametrize("sink, module", [("tensorboard", "tensorboardX"), ("wandb", "wandb")])
def test_a_missing_extra_is_one_line_naming_the_install_command(tmp_path, monkeypatch, sink, module):
    real = builtins.__import__

    def without(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    cfg = TrainConfig(log=(sink,))
    with pytest.raises(UsageError) as e:
        Sinks(RunDir.create(tmp_path / "run", cfg), cfg)
    assert str(e.value) == (f"--log {sink} needs the {sink} extra ({module} is missing): "
                            f"pip install 'hypermeta[{sink}]'")


def test_the_log_sinks_do_not_make_a_resume_conflict_and_round_trip():
    cfg = TrainConfig(log=("tensorboard", "wandb"))
    assert cfg.differences(TrainConfig()) == []
    assert dataclasses.replace(cfg, frames=1).differences(cfg) == ["frames"]
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = TrainConfig().to_dict()
    del old["log"]  # a config.json written before the field existed
    assert TrainConfig.from_dict(old).log == ()


def test_scalars_are_the_numeric_columns_without_the_run_names():
    row = {"seed": 3, "lr": 1e-3, "update": 5, "frames": 300, "meta_episode_return": 2.5, "diverged": 0,
           "note": "x", "flag": True}
    assert scalars(row) == {"update": 5.0, "frames": 300.0, "meta_episode_return": 2.5, "diverged": 0.0}


def test_progress_return_is_the_last_evaluation_and_a_smoothed_mean(tmp_path):
    recent: deque[float] = deque(maxlen=3)
    rows = [{"meta_episode_return": 15.7, "diverged": 0}, {"meta_episode_return": 100.0, "diverged": 1}]
    assert _return_text(rows, recent) == "15.70, avg 15.70"
    assert _return_text([{"meta_episode_return": 4.3, "diverged": 0}], recent) == "4.30, avg 10.00"
    _return_text([{"meta_episode_return": 1.0, "diverged": 0}], recent)
    assert _return_text([{"meta_episode_return": 2.0, "diverged": 0}], recent) == "2.00, avg 2.43"  # last 3 only
    assert _return_text([{"meta_episode_return": 1.0, "diverged": 1}], recent) == "diverged"
    # A resumed run starts from the evaluations in metrics.csv (healthy runs, mean per update).
    run = RunDir.create(tmp_path / "run", TrainConfig())
    run.append_metrics([{"seed": s, "lr": 1e-3, "update": u, "meta_episode_return": u + s, "diverged": int(s == 9)}
                        for u in (5, 10) for s in (1, 2, 9)])
    assert list(_recent_returns(run)) == [6.5, 11.5]


def test_legends_count_one_seed_in_the_singular():
    assert (seeds_text(1), seeds_text(3)) == ("1 seed", "3 seeds")


# --------------------------------------------------------------------------- sinks on clusters


class FakeWandbRun:
    """What WandbSink gives wandb.init and logs to a run."""

    def __init__(self, **kwargs):
        self.kwargs, self.logged = kwargs, []

    def define_metric(self, *args, **kwargs) -> None:
        pass

    def log(self, row: dict) -> None:
        self.logged.append(row)

    def finish(self) -> None:
        pass


@pytest.fixture
def fake_wandb(monkeypatch) -> list[FakeWandbRun]:
    """`import wandb` gives a module whose init records its runs (in this list)."""
    runs: list[FakeWandbRun] = []
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: runs.append(FakeWandbRun(**kw))
                                                                    or runs[-1]))
    return runs


def rows_at(cfg: TrainConfig, *frames: int) -> list[dict]:
    return [{"seed": s, "lr": lr, "update": f // 100, "frames": f, "meta_episode_return": f / 100 + s}
            for f in frames for s, lr in cfg.runs]


def test_wandb_runs_are_grouped_by_environment_and_method_and_named_by_seed_and_lr(tmp_path, fake_wandb):
    """Two cells of one sweep with the same directory name (lr-0.001_seed-1) but other methods, and a
    non-default state embedding: three groups, no name shared."""
    from hypermeta.families import method_defaults

    rnn, hn = (dataclasses.replace(method_defaults("grid-world", m), lr=(1e-3,), log=("wandb",)) for m in ("rnn", "rnn-hn"))
    cells = [(dataclasses.replace(rnn, seeds=(1,)), "rnn"), (dataclasses.replace(hn, seeds=(1, 2)), "rnn-hn"),
             (dataclasses.replace(hn, seeds=(1,), model=dataclasses.replace(hn.model, policy_state_embed=625)), "big")]
    for cfg, method_dir in cells:
        Sinks(RunDir.create(tmp_path / method_dir / "lr-0.001_seed-1", cfg), cfg).close()
    got = [(r.kwargs["group"], r.kwargs["job_type"], r.kwargs["name"]) for r in fake_wandb]
    assert got == [("grid-world/rnn", "lr=0.001", "grid-world/rnn seed=1,lr=0.001"),
                   ("grid-world/rnn-hn", "lr=0.001", "grid-world/rnn-hn seed=1,lr=0.001"),
                   ("grid-world/rnn-hn", "lr=0.001", "grid-world/rnn-hn seed=2,lr=0.001"),
                   ("grid-world/rnn-hn_state-embed-625", "lr=0.001", "grid-world/rnn-hn_state-embed-625 seed=1,lr=0.001")]


def tensorboard_steps(folder) -> list[int]:
    """The step of every meta_episode_return event in `folder`'s event files, as written (TFRecord framing)."""
    from tensorboardX.proto.event_pb2 import Event

    steps = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 16 + length
            steps += [event.step for v in event.summary.value if v.tag == "meta_episode_return"]
    return steps


def test_a_resumed_run_logs_no_step_twice(tmp_path, fake_wandb):
    """Logged up to 300 frames, then lost; resumed from the checkpoint at 100 frames, it trains 200
    and 300 again: the sinks skip them and go on from 400."""
    cfg = TrainConfig(seeds=(1, 2), lr=(1e-3,), log=("tensorboard", "wandb"))
    run = RunDir.create(tmp_path / "run", cfg)
    first = Sinks(run, cfg)
    first.write(rows_at(cfg, 100))
    first.write(rows_at(cfg, 200, 300))
    first.close()  # (a crash leaves the same files: each batch is recorded once sent)
    time.sleep(1.1)  # tensorboardX names event files by the second: the resumed session's is another file
    resumed = Sinks(run, cfg, start_frames=100)
    for frames in (200, 300, 400):
        resumed.write(rows_at(cfg, frames))
    resumed.close()
    assert [r.kwargs["id"] for r in fake_wandb[2:]] == [r.kwargs["id"] for r in fake_wandb[:2]]  # the same runs
    for i, (seed, lr) in enumerate(cfg.runs):
        logged = [row["frames"] for r in fake_wandb[i::2] for row in r.logged]
        assert logged == [100, 200, 300, 400], (seed, logged)
        assert tensorboard_steps(run.path / "tensorboard" / run_key(seed, lr)) == [100, 200, 300, 400]
    assert json.loads((run.path / "logged_steps.json").read_text()) == {
        sink: {"seed=1,lr=0.001": 400, "seed=2,lr=0.001": 400} for sink in ("tensorboard", "wandb")}
