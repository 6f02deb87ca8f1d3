"""The settings of each training algorithm: plain pydantic data, importable without torch.

Pipeline configs and flow parameters are validated against these before any model loads, so
a typo in a config fails in a second, not after torch and transformers have been imported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.core.errors import CharterError
from tasks.train.tracking import ReportTo
from tasks.train.uncertainty import Aggregation

# The loss types TRL 1.16's DPOTrainer computes (``DPOConfig.loss_type``; the trainer raises on
# any other name, but only when the first batch's loss is computed, after the reward model trained).
# ``targets: soft`` and ``weights`` are charter's own, for ``sigmoid`` only (``tasks.train.dpo_loss``).
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


# The attention projections every LoRA policy adapts (DPO, SFT, PPO): the modules' names in
# Llama-style models such as SmolLM2.
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")

REPORT_TO_HELP = (
    "Where per-step training metrics go, beside the checkpoint in its logs/ folder (repeatable): "
    "tensorboard (event files), mlflow (a local file store, logs/mlruns), wandb (an offline run); "
    "none by default."
)


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
    targets: Literal["soft", "hard"] = Field(
        "soft",
        description="soft: each row's target p = P(chosen is better) from the merge is the label, the loss "
        "-p*log(sigmoid(beta*delta)) - (1-p)*log(sigmoid(-beta*delta)); hard: every row counts as p = 1, "
        "TRL's sigmoid loss. loss_type sigmoid only.",
    )
    weights: bool = Field(
        True,
        description="Scale each row's loss by its weight from the merge (a weighted mean over each optimiser "
        "step's rows; weight-0 rows are left out); off: every row weighs 1. loss_type sigmoid only.",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Batches per optimiser step (an effective batch of batch_size times this)."
    )
    report_to: ReportTo = Field((), description=REPORT_TO_HELP)

    @model_validator(mode="after")
    def _exo_needs_smoothing(self) -> DPOSettings:
        # TRL's DPOTrainer refuses this pairing when it is built, i.e. after the data is prepared.
        if self.loss_type == "exo_pair" and self.label_smoothing == 0:
            raise ValueError("loss_type exo_pair needs label_smoothing above 0 (the EXO paper uses 0.001)")
        return self

    @model_validator(mode="after")
    def _soft_and_weighted_need_sigmoid(self) -> DPOSettings:
        # Soft targets and weights are defined on the sigmoid loss; TRL's other losses have neither.
        if self.loss_type != "sigmoid" and (self.targets == "soft" or self.weights):
            raise ValueError(
                f"targets soft and weights are for loss_type sigmoid only: with loss_type {self.loss_type} "
                "set targets: hard and weights: false (--targets hard --no-weights)"
            )
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
    report_to: ReportTo = Field((), description=REPORT_TO_HELP)


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
    report_to: ReportTo = Field((), description=REPORT_TO_HELP)


class SFTSettings(BaseModel):
    """SL-CAI's settings: supervised fine-tuning (TRL's ``SFTTrainer``) on a critique run's final
    revisions. Defaults suit a LoRA adapter on a small model on a CPU; the TRL names where they exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(
        default=1e-4, gt=0, description="AdamW's learning rate (LoRA adapters take more than full weights)."
    )
    steps: int = Field(default=20, ge=1, description="Optimiser steps (TRL's max_steps).")
    batch_size: int = Field(default=4, ge=1, description="(prompt, revision) records per step.")
    max_length: int = Field(
        default=384, ge=16, description="Tokens per record, prompt included (longer ones are cut)."
    )
    lora: bool = Field(default=True, description="Train LoRA adapters (merged into the saved model).")
    lora_r: int = Field(default=8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(default=16, ge=1, description="LoRA scale (alpha / r multiplies the update).")
    loss_records: int = Field(
        default=32,
        ge=1,
        description="Training records the revisions' mean token loss before/after is measured on.",
    )
    seed: int = Field(default=0, description="Seeds the adapter's initialisation and the data order.")
    precision: Literal["float32", "bfloat16"] = Field(
        default="float32", description="Weights' dtype (bfloat16 mixed precision on a GPU only)."
    )
    report_to: ReportTo = Field((), description=REPORT_TO_HELP)


# The loss types TRL 1.16's GRPOTrainer computes at token-level importance sampling (charter does not
# expose ``importance_sampling_level``; ``luspo`` needs it at sequence level, so it is left out).
GRPOLossType = Literal["dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "vespo"]


class GRPOSettings(BaseModel):
    """GRPO's (or RLOO's) settings: TRL's trainer sampling ``num_generations`` responses per prompt
    and rewarding each by the constitution's rules and/or a reward model; LoRA on a CPU by default.

    ``beta`` defaults to 0.04 (TRL's default is 0: no reference model, no KL), so the policy is
    held to its base as charter's PPO is; TRL's ``kl`` is the mean per-token k3 estimate of
    KL(policy || base). A step samples ``batch_size`` prompts x ``num_generations`` responses.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["grpo", "rloo"] = Field(
        "grpo",
        description="grpo (TRL's GRPOTrainer: group-normalised advantages) or rloo (TRL's RLOOTrainer: "
        "leave-one-out baseline, KL in the reward).",
    )
    steps: int = Field(20, ge=1, description="Optimiser steps; each samples a fresh batch.")
    batch_size: int = Field(4, ge=1, description="Prompts per step (each answered num_generations times).")
    num_generations: int = Field(4, ge=2, description="Responses per prompt (the group; TRL needs 2+).")
    max_new_tokens: int = Field(32, ge=1, description="Tokens per response (TRL's max_completion_length).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the responses.")
    learning_rate: float = Field(1e-5, gt=0, description="AdamW's learning rate.")
    beta: float = Field(0.04, ge=0, description="KL coefficient to the base model (0: no KL, no reference).")
    loss_type: GRPOLossType = Field("dapo", description="GRPO's loss normalisation (TRL's loss_type).")
    lora: bool = Field(True, description="Train LoRA adapters (merged into the saved model).")
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scale (alpha / r multiplies the update).")
    seed: int = Field(0, description="Seeds the adapters, the prompt order and the sampling.")
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="Weights' dtype (bfloat16 mixed precision on a GPU only)."
    )
    rewards: Literal["rules", "reward_model", "both"] = Field(
        "rules", description="What rewards a response: the constitution's rules, a reward model, or both."
    )
    rule_rewards: Literal["per_rule", "aggregate"] = Field(
        "per_rule",
        description="per_rule: one reward function per rule that applies to the prompts (-1 broken, 0 "
        "kept or not applicable), each logged; aggregate: one, minus the number of rules broken.",
    )
    rules_weight: float = Field(1.0, ge=0, description="Weight of each rule reward function.")
    reward_model_weight: float = Field(1.0, ge=0, description="Weight of the reward model's score.")
    reward_aggregation: Aggregation = Field(
        "mean", description="How an ensemble reward model's members make its score: mean, min or uwo."
    )
    uncertainty_penalty: float = Field(1.0, ge=0, description="uwo's weight on the members' spread.")
    report_to: ReportTo = Field((), description=REPORT_TO_HELP)

    @model_validator(mode="after")
    def _consistent(self) -> GRPOSettings:
        if self.rewards == "rules" and self.reward_aggregation != "mean":
            raise ValueError(
                f"reward_aggregation {self.reward_aggregation} aggregates a reward model's members, but "
                "rewards is rules: use reward_model or both, or leave it at mean"
            )
        weights = {"rules": (self.rules_weight,), "reward_model": (self.reward_model_weight,)}
        weights["both"] = weights["rules"] + weights["reward_model"]
        if not any(weights[self.rewards]):
            raise ValueError(f"every weight of the {self.rewards} reward is 0: nothing would be optimised")
        if self.algorithm == "rloo" and self.loss_type != "dapo":
            raise ValueError(f"loss_type {self.loss_type} is GRPO's; RLOO has one loss: leave it at dapo")
        return self

    def check_reward_inputs(self, reward_model: str | None, rules: str | None) -> None:
        """The inputs ``rewards`` names are given, and only those (an ignored one is a mistake)."""
        needs = {"--rules": self.rewards != "reward_model", "--reward-model": self.rewards != "rules"}
        for flag, given in (("--rules", rules), ("--reward-model", reward_model)):
            if needs[flag] and given is None:
                raise CharterError(f"--rewards {self.rewards} needs {flag}")
            if given is not None and not needs[flag]:
                raise CharterError(f"{flag} is given, but --rewards {self.rewards} does not use it")
