"""Inject known bugs one at a time into a copy of the project; the tests must fail on each.

    python tests/mutations.py          # every mutation (a few minutes on a 2-core CPU)
    python tests/mutations.py 0 4      # some of them

Each mutation replaces one line of the package in a copy (in a temporary directory) and
runs the tests named beside it with that copy first on the path; "CAUGHT" means they
failed. Not part of the test run itself: it proves that the suite would catch these bugs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
MUT = Path(tempfile.gettempdir()) / "hypermeta-mutant"
MUTATIONS = [
    ("hidden state not reset at a trial start", "src/hypermeta/networks/sequence.py",
     "return self.step(reset_where(reset, carry, self.initial_carry(reset.shape)), x)", "return self.step(carry, x)",
     ["tests/test_sequence.py", "tests/test_ppo.py"]),
    ("GAE bootstrapping across a trial end", "src/hypermeta/training/ppo.py",
     "delta = r + gamma * next_value * not_done - v", "delta = r + gamma * next_value - v",
     ["tests/test_ppo.py"]),
    ("Bias-HyperInit latent-dependent", "src/hypermeta/networks/hyper.py",
     "head_init, const_w_init = zeros, self.base_kernel_init",
     "head_init, const_w_init = nn.initializers.normal(0.01), self.base_kernel_init",
     ["tests/test_networks.py"]),
    ("replay from the wrong start state", "src/hypermeta/training/ppo.py",
     "_, latents = agent.encode_sequence(params, rollout.init_hidden, rollout.encoder_inputs())",
     "_, latents = agent.encode_sequence(params, agent.initial_carry(rollout.reward.shape[1:]), rollout.encoder_inputs())",
     ["tests/test_ppo.py"]),
    ("missing stop-gradient on the ELBO latent", "src/hypermeta/methods/encoder_objectives.py",
     "return latent if keep_gradient else jax.lax.stop_gradient(latent)", "return latent",
     ["tests/test_inference.py::test_ppo_loss_does_not_reach_a_variational_encoder", "tests/test_inference.py::test_policy_reads_a_variational_latent_without_its_gradient", "tests/test_grad_info.py"]),
    ("host/JAX carry mismatch (the old task after a trial end)", "src/hypermeta/training/collectors/host_collector.py",
     'trial_state = _trial_state(r(info["next_task"]), r(info["next_episode"]), shape)',
     'trial_state = _trial_state(r(info["task"]), r(info["next_episode"]), shape)',
     ["tests/test_host.py"]),
    ("the LRU's input normalisation dropped", "src/hypermeta/networks/linear_recurrence.py",
     "b = (self.b_re + 1j * self.b_im) * jnp.exp(self.gamma_log)[:, None]", "b = self.b_re + 1j * self.b_im",
     ["tests/test_sequence_models.py::test_lru_state_follows_the_papers_normalised_recurrence",
      "tests/test_sequence_models.py::test_lru_normalisation_keeps_the_states_power_at_its_inputs"]),
]


def main() -> None:
    """Run the mutations named on the command line (all by default)."""
    only = sys.argv[1:]
    for i, (name, path, old, new, tests) in enumerate(MUTATIONS):
        if only and str(i) not in only:
            continue
        if MUT.exists():
            shutil.rmtree(MUT)
        shutil.copytree(SRC, MUT, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", "docs"))
        text = (MUT / path).read_text()
        assert text.count(old) == 1, (name, old)
        (MUT / path).write_text(text.replace(old, new))
        t0 = time.time()
        env = {**os.environ, "PYTHONPATH": str(MUT / "src")}
        res = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0", *tests],
                             cwd=MUT, env=env, capture_output=True, text=True)
        failed = [line for line in res.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        verdict = "CAUGHT" if res.returncode != 0 and failed else ("NOT CAUGHT" if res.returncode == 0 else f"rc {res.returncode}")
        print(f"{i}. {name}: {verdict} in {time.time() - t0:.0f} s; {failed[:2]}", flush=True)
        if verdict != "CAUGHT":
            print(res.stdout[-2000:], flush=True)


if __name__ == "__main__":
    main()
