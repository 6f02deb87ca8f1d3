"""The settings of each training algorithm: plain pydantic data, importable without torch.

Pipeline configs and flow parameters are validated against these before any model loads, so
a typo in a config fails in a second, not after torch and transformers have been imported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.train.uncertainty import Aggregation

# The loss types TRL 1.16's DPOTrainer computes (``DPOConfig.loss_type``; the trainer raises on
# any other name, but only when the first batch's loss is computed, after the reward model trained).
DPOLossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]


class DPOSettings(BaseModel):
    """A DPO run's settings as plain data (a flow parameter); the TRL names where they exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    beta: float = Field(default=0.1, gt=0)
    loss_type: DPOLossType = "sigmoid"
    label_smoothing: float = Field(default=0.0, ge=0, lt=0.5)
    learning_rate: float = Field(default=5e-5, gt=0)
    steps: int = Field(default=20, ge=1)
    batch_size: int = Field(default=4, ge=1)
    max_length: int = Field(default=384, ge=16)
    lora: bool = True
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    # Keep rows whose |2 * target - 1| (the label's confidence) is at least this.
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    # The log-prob margin before and after training is measured on (at most) this many of the
    # training pairs: a forward pass per text, ~0.3 s each on a 2-core CPU.
    margin_pairs: int = Field(default=32, ge=1)
    seed: int = 0
    precision: Literal["float32", "bfloat16"] = "float32"

    @model_validator(mode="after")
    def _exo_needs_smoothing(self) -> DPOSettings:
        # TRL's DPOTrainer refuses this pairing when it is built, i.e. after the data is prepared.
        if self.loss_type == "exo_pair" and self.label_smoothing == 0:
            raise ValueError("loss_type exo_pair needs label_smoothing above 0 (the EXO paper uses 0.001)")
        return self


class RewardModelSettings(BaseModel):
    """Training settings. ``learning_rate``'s default suits the small encoder; causal LMs usually
    want less (~1e-5). The fields' docstrings are their descriptions (``charter train reward --help``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    backbone: str = "minilm"
    """``"minilm"`` (embedded encoder), ``"smollm2"`` (embedded causal LM), or a model folder / Hub id."""
    max_length: int = Field(256, ge=8)
    batch_size: int = Field(16, ge=1)
    """Pairs per optimiser step (twice as many sequences per forward pass)."""
    epochs: int = Field(1, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    eval_fraction: float = Field(0.2, ge=0, lt=1)
    """Share of pairs held out when ``train_reward_model`` gets no ``eval_records``."""
    ensemble: int = Field(1, ge=1, le=16)
    """Members of the ensemble: member k trains with seed + k on its own bootstrap resample of the
    training pairs; 1 is a single model on every pair. Their spread is the reward model's
    uncertainty."""


class PPOSettings(BaseModel):
    """PPO's settings. Clip ranges, ``vf_coef``, GAE and KL control default to the original TRL's
    values; sizes and learning rate default small, for a LoRA policy on a CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(20, gt=0)
    batch_size: int = Field(8, gt=0, description="prompts (and responses) per step")
    max_new_tokens: int = Field(32, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    learning_rate: float = Field(1e-5, ge=0)
    ppo_epochs: int = Field(4, gt=0)
    mini_batch_size: int = Field(4, gt=0)
    gamma: float = Field(1.0, ge=0, le=1, description="discount per token")
    lam: float = Field(0.95, ge=0, le=1, description="GAE's lambda")
    clip_range: float = Field(0.2, gt=0)
    clip_range_value: float = Field(0.2, gt=0)
    vf_coef: float = Field(0.1, ge=0)
    init_kl_coef: float = Field(0.2, ge=0)
    target_kl: float = Field(6.0, gt=0)
    kl_horizon: float = Field(10000, gt=0)
    adaptive_kl: bool = True
    lora_r: int = Field(8, gt=0)
    lora_alpha: int = Field(16, gt=0)
    seed: int = 0
    whiten_advantages: bool = True
    reward_aggregation: Aggregation = Field(
        "mean",
        description="How an ensemble reward model's members make PPO's reward: their mean, their "
        "worst case (min) or uwo (mean - uncertainty_penalty * std), after Coste et al. (ICLR 2024).",
    )
    uncertainty_penalty: float = Field(
        1.0, ge=0, description="uwo's weight on the members' spread (std); unused by mean and min."
    )
