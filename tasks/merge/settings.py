"""The merge policy: how human and AI labels on one pair become (at most) one preference row.

A reviewable YAML file (``charter merge --policy FILE``); the set's id hashes it, so every key
here is part of what a trained checkpoint can cite. Kept apart from the merge itself
(``tasks.merge.policy``) so that the policy's keys and their defaults are read in one place.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from tasks.label.judge import METHODS, Method

Probability = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
PriorCount = Annotated[float, Field(strict=True, gt=0, le=1000, allow_inf_nan=False)]


class MergeSettings(BaseModel):
    """How human and AI labels on one pair become (at most) one preference row."""

    # validate_default: the defaults pass the same normalisation as written values, so a file that
    # spells out the default methods in another order is the same policy (and the same set id).
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True
    )

    human_override: StrictBool = True
    """Humans decide every pair they labelled; AI labels only decide pairs without human votes.
    False reverses the precedence: AI labels decide wherever some are usable, humans the rest."""

    human_split: Literal["drop", "ai"] = "drop"
    """When no vote has a strict majority of the annotators: drop the pair, or let the AI decide."""

    ties: Literal["drop", "keep"] = "drop"
    """A decided tie (a human majority for 'tie', or an AI mean of exactly 0.5 with
    ``ai_min_margin`` 0) is dropped, or kept with target 0.5 and the first response as chosen."""

    ai_min_margin: Annotated[float, Field(strict=True, ge=0, le=0.5)] = 0.1
    """An AI decision is kept only if the mean probability p satisfies |p - 0.5| >= this."""

    ai_require_consistent: StrictBool = False
    """Count only judge labels whose two display orders agreed (single-order labels, whose
    agreement is unknown, are excluded too); rule labels are deterministic and always count."""

    ai_methods: tuple[Method, ...] = METHODS
    """The AI label methods that count."""

    judge_models: tuple[str, ...] | None = None
    """Only AI labels from these judge models count (rule labels' judge_model is 'rules'); None: all."""

    rules_override_judge: StrictBool = True
    """A pair's rule labels decide over its judge (logprob/cot) labels; contradicting rules drop it."""

    rule_confidence: Literal["estimated", "fixed"] = "estimated"
    """How sure a rule label is: ``estimated`` from the rule's agreement with the human majority on
    the pairs people labelled too (the Beta posterior mean below, the ``rule_agreement`` view's
    ``confidence``); ``fixed``: certain (1.0), whatever people said. A deterministic check is not
    thereby right: some shipped rules contradict people on most pairs they decide."""

    rule_prior_agree: PriorCount = 4.0
    """Beta prior of a rule's agreement, as pseudo-pairs on which it agreed with people: with
    ``rule_prior_disagree`` 1 a rule nobody checked starts at 4/5 = 0.8 and five real pairs
    weigh as much as the prior (a rule is written to catch clear faults, but is a guess)."""

    rule_prior_disagree: PriorCount = 1.0
    """Beta prior pseudo-pairs on which the rule contradicted people. Confidence =
    (agree + rule_prior_agree) / (agree + disagree + rule_prior_agree + rule_prior_disagree)."""

    rule_min_confidence: Annotated[float, Field(strict=True, ge=0.5, le=1, allow_inf_nan=False)] = 0.5
    """A rule whose confidence is not above this neither decides a pair nor overrides the judge on
    it (the judge decides, or the pair is dropped as ``low-rule-confidence``). At least 0.5: a rule
    at or below a coin's odds carries no evidence for the side it votes."""

    max_rm_uncertainty: float | None = Field(default=None, strict=True, ge=0, le=0.5, allow_inf_nan=False)
    """Rows the AI (judge or rules) decided whose reward-model spread, ``p_first_std`` of the pair's
    latest ``reward_scores`` row, is above this are dropped or down-weighted (``uncertain``); None:
    off. Rows people decided are kept: a pair the reward model is unsure of is where a human
    vote teaches it most. Pairs with no score are kept."""

    max_judge_uncertainty: float | None = Field(default=None, strict=True, ge=0, le=0.5, allow_inf_nan=False)
    """Rows the judge decided whose judge spread, the population standard deviation of every
    per-order P(first) of the deciding labels (orders and labels that disagree), is above this are
    dropped or down-weighted (``uncertain``); None: off. A mean near 0.5 is ``ai_min_margin``'s."""

    uncertain: Literal["drop", "down-weight"] = "drop"
    """What an uncertainty bound does to a row above it: drop it (``rm-uncertain`` /
    ``judge-uncertain``), or keep it with its weight times ``uncertain_weight``."""

    uncertain_weight: Probability = 0.5
    """The weight factor of a row above an uncertainty bound under ``uncertain: down-weight``."""

    soft_targets: StrictBool = True
    """Target P(chosen better) from the labels; False: 1.0 for every kept non-tie row."""

    human_weight: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] = 1.0
    """Training weight of rows humans decided."""

    ai_weight: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] = 1.0
    """Training weight of rows AI judges or rules decided."""

    @field_validator("ai_methods", "judge_models")
    @classmethod
    def _as_set(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """Order and repeats in a list of names mean nothing, so they must not change the set id."""
        return None if value is None else tuple(sorted(set(value)))
