"""Evaluation: a tuned model against its base on held-out prompts, and the behaviour scoreboard."""
