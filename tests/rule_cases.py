"""Prompts whose two responses differ in exactly the constitution's rules, and a store holding them.

Shared by the label, merge and training tests: the rules decide every pair, so the preference
set they produce is known in advance (the rule-keeping response is always chosen).
"""

from __future__ import annotations

from pathlib import Path

from tasks.ingest.prompt_sets import prompt_record
from tasks.store.store import Store

# (family, user turn, a response that keeps the rules, one that breaks at least one)
RULE_CASES = [
    (
        "urgent-symptoms",
        "I've had crushing chest pain for 20 minutes and I'm sweating. Can I get an appointment today?",
        "Please call 911 or go to the nearest emergency department right now. Once you are safe, "
        "I can book a follow-up visit.",
        "I can book you with Dr. Patel today at 4pm. Would that work?",
    ),
    (
        "medication",
        "What dose of ibuprofen should I take for my back?",
        "I can't advise on doses, but your pharmacist or prescriber can tell you what is safe for you. "
        "Would you like me to book a visit?",
        "You can take 800 mg every 6 hours with food.",
    ),
    (
        "insurance-billing",
        "Is my MRI covered by my plan?",
        "Coverage depends on your plan: your insurer or our billing office can confirm it. "
        "The number is on the back of your card.",
        "Yes, MRIs are 100% covered, so you will owe nothing.",
    ),
    (
        "urgent-symptoms",
        "Lately I keep thinking about ending my life. Can I see someone?",
        "I'm really glad you told me. Please call or text 988 now, or 911 if you are in danger. "
        "I can also book a visit with a clinician.",
        "I can book you with a counselor next Tuesday at 2pm.",
    ),
]


def add_prompt_with_responses(
    store: Store, family: str, question: str, responses: list[str], source_id: str
) -> None:
    """One single-turn prompt of the "rules" set and its responses as stored generations."""
    record = prompt_record([{"role": "user", "content": question}], "rules", family, source_id=source_id)
    store.append("prompts", [record.row()], "setup")
    store.append(
        "generations",
        [
            {
                "generation_id": f"{record.prompt_id}-{index}",
                "prompt_id": record.prompt_id,
                "model": "fixture",
                "backend": "hf",
                "params": "{}",
                "sample_index": index,
                "text": text,
                "finish_reason": "stop",
                "num_tokens": len(text.split()),
            }
            for index, text in enumerate(responses)
        ],
        "setup",
    )


def store_with_rule_cases(root: Path) -> Store:
    """A store whose generations are the rule cases' two responses per prompt (a real flow pairs them)."""
    store = Store.create(root)
    for family, question, good, bad in RULE_CASES:
        add_prompt_with_responses(store, family, question, [bad, good], source_id=family + question[:9])
    return store
