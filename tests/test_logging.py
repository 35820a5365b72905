"""Logging sinks and progress details that need no training (the trained ones are in test_eval.py)."""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections import deque

import pytest

from hypermeta.analysis.plot import seeds_text
from hypermeta.config import TrainConfig
from hypermeta.errors import UsageError
from hypermeta.rundir import RunDir
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
