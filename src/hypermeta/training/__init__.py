"""Recurrent PPO training: rollouts, the update, evaluation and the run loop."""
