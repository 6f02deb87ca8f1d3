"""The check that flags revisions talking about the response, the exports that leave them out,
and the bundled few-shot files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.constitution.model import load_constitution
from tasks.critique.chains import REVISION_SUFFIX, ChainState, GenerationItem, load_few_shot
from tasks.critique.revision_check import (
    ANNOUNCES_A_REWRITE,
    COPIES_AN_EXAMPLE,
    LABEL,
    NAMES_THE_RESPONSE,
    QUOTES_THE_ORIGINAL,
    THIRD_PERSON,
    copies_an_example,
    revision_problem,
    talks_about_the_response,
)
from tasks.generate.generation import PromptItem
from tasks.store.exports import TALKS_ABOUT_THE_RESPONSE, UNCHANGED, preference_records, sft_records

CONSTITUTIONS = Path(__file__).parents[2] / "constitutions"

# Commentary, most of it as the embedded SmolLM2 wrote it in a demo critique run.
COMMENTARY = [
    (
        "The original response used specialized language and included a lack of accessibility "
        "support. The rewritten response uses plain sentences and avoids complex language.",
        NAMES_THE_RESPONSE,
    ),
    ("The assistant's last response failed to take a critical step.", NAMES_THE_RESPONSE),
    ("The response verifies identity before touching an account and shares nothing.", NAMES_THE_RESPONSE),
    ("Sure thing.\n\nThe reply does not mention the 911 instruction.", NAMES_THE_RESPONSE),
    ("In this revision, the booking is confirmed in one step.", NAMES_THE_RESPONSE),
    ("Here's a version of the response that uses a warmer tone.", NAMES_THE_RESPONSE),
    ("Adi, I'll need to review the medication. (repeating the last response)", NAMES_THE_RESPONSE),
    ("Critique: it never asks for the location.\nRevision: Which clinic suits you?", LABEL),
    ("Sure.\n\n**Revised response:** Which day works for you?", LABEL),
    ("Here is an improved version:\nWhich day works best for you?", ANNOUNCES_A_REWRITE),
    ("Here\u2019s my new version. Which day works best for you?", ANNOUNCES_A_REWRITE),
    ("I have rewritten the response to be shorter.", ANNOUNCES_A_REWRITE),
    ("The answer should include the billing office's number.", ANNOUNCES_A_REWRITE),
    ("A better response would be more concise and ask for the visit type.", ANNOUNCES_A_REWRITE),
    ("The user asked about the pharmacy, so I kept it short.", THIRD_PERSON),
    ("Its opening sentence tells the user to call 911 or go to the emergency department.", THIRD_PERSON),
    ("I'm so sorry to hear about the user's situation, but I'm here to help.", THIRD_PERSON),
    ("The assistant should have asked which clinic.", THIRD_PERSON),
]

# Replies to the user, several of them using the words the heuristics look for.
REPLIES = [
    "Sure, I can book your flu shot at Riverside. Which day and time work best for you?",
    "Please call 911 now. Once you have been seen, I can help you book a follow-up visit.",
    "Thanks for your response to the intake form; I've added it to your chart.",
    "I'll send a response by email within two business days.",
    "The response from your insurer usually arrives within 30 days; the billing office can check on it.",
    "Your pharmacist can answer that; the answer should come from someone who knows your prescriptions.",
    "The response could take a few days, so I'd book the follow-up now.",
    "Dr. Lee's office can schedule the revision surgery; would you like their number?",
    "The medical assistant will call you to confirm the time.",
    "You can reset it in the user portal under Settings.",
    "I have updated your appointment to Tuesday at 3:00 pm at the Brookside clinic.",
    "Download the new version of our app to see your visit summary.",
    "I've updated the message preferences on your account, so reminders come by text.",
    "I've edited the draft of your letter to the insurer; have a look before you send it.",
    "I have updated the answer on your intake form, as you asked.",
    "I'm not sure of the exact cost. If the answer is unclear after you call, I can help you find out more.",
    "Your response helps: I've found Thursday at 10:00 with Dr. Okafor. Shall I book it?",
    'You said "I can\'t remember which doctor I saw", so could you tell me roughly when your last visit was?',
]


@pytest.mark.parametrize(("revision", "reason"), COMMENTARY)
def test_commentary_is_flagged_with_its_reason(revision: str, reason: str) -> None:
    assert talks_about_the_response(revision) == reason


@pytest.mark.parametrize("revision", REPLIES)
def test_replies_are_not_flagged(revision: str) -> None:
    assert talks_about_the_response(revision, "Yes, we have openings. What time?") is None


def test_quoting_five_words_of_the_original_is_flagged_only_with_the_original() -> None:
    original = "Of course! Dr. Patel has openings tomorrow at 9:00 and 2:30."
    quoting = 'You got "Dr. Patel has openings tomorrow" back, and that was wrong.'
    assert talks_about_the_response(quoting, original) == QUOTES_THE_ORIGINAL
    assert talks_about_the_response(quoting) is None
    assert talks_about_the_response('A short "Dr. Patel has openings" quote.', original) is None  # 4 words
    assert (
        talks_about_the_response('"Patel has openings tomorrow at 9" here.', "Dr. Patel has openings") is None
    )


def test_copying_eight_words_of_an_example_is_flagged() -> None:
    example = "Please call 911 now: a drooping face and slurred speech can be signs of a stroke."
    copied = "PLEASE call 911 now! A drooping face and slurred speech... anyway, your bill is due."
    assert copies_an_example(copied, ["Sure.", example])
    assert not copies_an_example("Please call 911 now: a drooping face needs care.", [example])  # 7 words
    assert not copies_an_example(copied, [])
    assert revision_problem(copied, None, [example]) == COPIES_AN_EXAMPLE
    assert revision_problem("The user asked: " + copied, None, [example]) == THIRD_PERSON  # talk first
    assert revision_problem(copied, None) is None


@pytest.mark.parametrize("name", ["healthcare-scheduling", "helpful-harmless"])
def test_bundled_few_shot_files_match_their_constitution_and_are_replies(name: str) -> None:
    constitution = load_constitution(CONSTITUTIONS / f"{name}.yaml")
    examples = load_few_shot(CONSTITUTIONS / f"{name}.few-shot.jsonl")
    assert 2 <= len(examples) <= 4
    requests = {(p.critique, (p.revision or "") + REVISION_SUFFIX) for p in constitution.principles}
    for example in examples:
        assert [m["role"] for m in example] == ["user", "assistant"] * 3
        # The requests are the constitution's own, as a critique run asks them.
        assert (example[2]["content"], example[4]["content"]) in requests
        revision, original = example[5]["content"], example[1]["content"]
        assert talks_about_the_response(revision, original) is None
        assert revision.strip() != original.strip()


def _chain(index: int, *revisions: str) -> ChainState:
    item = GenerationItem(
        generation_id=f"gen-{index}",
        prompt=PromptItem(
            f"prompt-{index}", "booking", ({"role": "user", "content": "Any openings Friday?"},)
        ),
        text=f"Yes, Friday {index} works. Anything else?",
    )
    done = [{"revision": text, "principle_id": "p", "constitution_id": "c"} for text in revisions]
    return ChainState(item=item, next_round=len(done), input_text=revisions[-1], done=done)


def test_exports_leave_out_revisions_that_talk_about_the_response_and_count_them() -> None:
    reply = _chain(0, "Friday works: which time suits you, morning or afternoon?")
    commentary = _chain(1, "The original response never asked which time suits the user.")
    unchanged = _chain(2, "Yes, Friday 2 works. Anything else?")
    # Round 2 quotes round 1's revision, the text it revised (not the generation).
    quoting = _chain(
        3, "We have Friday at 9:00 or 2:30 open.", 'Saying "we have Friday at 9:00 or" was vague.'
    )
    states = [reply, commentary, unchanged, quoting]

    sft, sft_left_out = sft_records([s for s in states if len(s.done) == 1], 1)
    assert [r["generation_id"] for r in sft] == ["gen-0", "gen-2"]  # an unchanged reply is still a target
    assert sft_left_out == {f"{TALKS_ABOUT_THE_RESPONSE} ({NAMES_THE_RESPONSE})": 1}

    pairs, pairs_left_out = preference_records([s for s in states if len(s.done) == 1], 1)
    assert [r["generation_id"] for r in pairs] == ["gen-0"]
    assert pairs_left_out == {f"{TALKS_ABOUT_THE_RESPONSE} ({NAMES_THE_RESPONSE})": 1, UNCHANGED: 1}

    two_rounds, left_out = sft_records([quoting], 2)
    assert two_rounds == [] and left_out == {f"{TALKS_ABOUT_THE_RESPONSE} ({QUOTES_THE_ORIGINAL})": 1}

    example = "Friday works: which time suits you, morning or afternoon? I can also"
    dialogue = ({"role": "user", "content": "Friday?"}, {"role": "assistant", "content": example})
    copied, copies = sft_records([reply, unchanged], 1, few_shot=[dialogue])
    assert [r["generation_id"] for r in copied] == ["gen-2"] and copies == {COPIES_AN_EXAMPLE: 1}
