"""The stress route: edge-case prompt sets the tuned model never trained on, derived variants, and
the per-stress-type comparison of a tuned model with its base."""
