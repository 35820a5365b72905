"""The reward scaler's std of the discounted return in each run's last checkpoint (what PPO's
rewards are divided by), per run of the given run directories."""
import sys
from pathlib import Path

import numpy as np

from hypermeta.rundir import RunDir
from hypermeta.training.learner import Learner

for d in sys.argv[1:]:
    run, cfg = RunDir.open_for_resume(Path(d))
    learner = Learner(cfg)
    like = learner.init_runs([s for s, _ in cfg.runs], [lr for _, lr in cfg.runs])
    step, state = run.restore_checkpoint(like)
    std = np.sqrt(np.asarray(state.reward_scaler.rms.var))
    print(f"{Path(d).name:28s} update {step}: return std per run {np.round(std, 3).tolist()}, "
          f"reward multiplier {np.round(1 / std, 3).tolist()}")
