"""Is a revision a reply to the user, or commentary about the response it was meant to replace?

A small model asked to "rewrite the response" often writes about the response instead ("The
original response used specialized language... The rewritten response uses plain
sentences"). Such a text is a poor SFT target and a poor "chosen" side of a pair: trained on,
it teaches the policy to answer users with notes about its own answers. This check flags
them, so the exports and the revision pairs can leave them out and count them.

The heuristics look for things a reply to the user has no reason to say, each written to
spare what a legitimate reply does say:

- a ``Critique:``/``Revision:``-style label on a line of its own (``Revised response:``,
  ``Original reply:``, ``Improved version:``, ``Critique:``), anywhere in the text: a reply
  has no such headings (a leading one is already stripped by ``chains.clean``);
- the response, the reply or the answer named as an object: with a qualifier (``the
  original/rewritten/revised/previous/last response``, ``an assistant's (last) reply``, ``a
  version of the response``, ``this revision``, ``the rewrite``), or bare, followed by a verb
  that describes a text (``The response uses...``, ``the reply fails to...``, ``the answer
  only shares...``); "your response", "a response by email", "the response from your
  insurer" and "the response could take a few days" are not flagged;
- the assistant or the user spoken of in the third person: as the subject of a verb (``the
  assistant should``, ``the user asked``), the object of one (``tells the user``) or a
  possessive (``the user's situation``): a reply says "I" and "you" (``the medical assistant
  will call you``, ``the user portal`` are not flagged);
- an announced rewrite (``here is a revised version``, ``I have rewritten``, ``I've revised the
  response``) or a prescription for one (``the answer should include``, ``should be more
  concise``; ``the answer should come from your pharmacist`` is not flagged);
- with the ``original`` it revised: a quotation of five or more of its words in double
  quotes, which only commentary on that draft has reason to make.

A second failure comes with the cure: shown few-shot dialogues, a small model sometimes answers
with one of their revisions whatever the user asked ("Please call 911 now: a drooping face..."
to a billing question). :func:`copies_an_example` flags a revision that shares a run of eight
consecutive words with an example's revision.

Pure Python regular expressions: no model, microseconds a revision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LABEL = "a Critique:/Revision: heading"
NAMES_THE_RESPONSE = "names the response in the third person"
THIRD_PERSON = "speaks of the assistant or the user in the third person"
ANNOUNCES_A_REWRITE = "announces or prescribes a rewrite"
QUOTES_THE_ORIGINAL = "quotes the response it revised"
COPIES_AN_EXAMPLE = "copies a few-shot example"
COPY_WORDS = 8

_APOSTROPHE = "['\u2019]"  # straight or curly
_NOUN = r"(?:response|reply|answer|draft)"
_QUALIFIER = (
    r"(?:original|rewritten|re-written|revised|previous|last|initial|earlier|above|updated|"
    r"improved|modified|corrected)"
)
# Verbs that describe a text, after a bare "the response" ("takes", "arrives", "could" and
# "will" are left out: "the response could take a few days" is a reply).
_CRITIQUE_VERB = (
    r"(?:(?:only|also|still|never|clearly|now) )?(?:uses|used|fails|failed|lacks|lacked|"
    r"provides|provided|includes|included|mentions|mentioned|addresses|addressed|acknowledges|"
    r"acknowledged|asks|asked|offers|offered|focuses|focused|contains|contained|violates|"
    r"violated|verifies|verified|shares|shared|explains|explained|states|stated|avoids|avoided|"
    r"keeps|kept|removes|removed|directs|directed|ensures|ensured|suggests|suggested|"
    r"recommends|recommended|emphasizes|emphasized|highlights|highlighted|aims|aimed|attempts|"
    r"attempted|refuses|refused|ignores|ignored|misses|missed|repeats|repeated|does not|"
    r"doesn't|did not|didn't|needs to|needed to|(?:is|was) (?:too|overly|concise|vague|"
    r"unhelpful|inappropriate|dismissive|missing))"
)

_CHECKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        LABEL,
        re.compile(
            r"^[ \t>*#_-]*(?:critique|revision|(?:original|revised|rewritten|improved|updated|"
            r"final)\s+(?:response|reply|answer|version|draft))[ \t*_]*:",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
    (
        NAMES_THE_RESPONSE,
        re.compile(
            rf"\b(?:the|this|that|its)\s+{_QUALIFIER}\s+{_NOUN}\b"
            rf"|\bassistant{_APOSTROPHE}?s?\s+(?:(?:last|previous|original)\s+)?{_NOUN}\b"
            r"|\b(?:the|this|that|a) (?:revised|rewritten|improved) version\b"
            r"|\bversion of (?:the|this|that|my|its) (?:response|reply|answer)\b"
            r"|\b(?:this|my) (?:revision|rewrite)\b|\bthe (?:rewrite|critique)\b"
            rf"|\b(?:the|this) (?:response|reply|answer)\s+{_CRITIQUE_VERB}\b",
            re.IGNORECASE,
        ),
    ),
    (
        THIRD_PERSON,
        re.compile(
            r"\bthe (?:assistant|user)\s+(?:should|could|would|must|needs|needed|fails|failed|"
            r"is|was|has|had|did|does|didn't|doesn't|asks|asked|wants|wanted|requested|mentions|"
            r"mentioned|said|says|provides|provided|uses|used|describes|described|receives|"
            r"received|gets|got|knows|understands)\b"
            r"|\b(?:tells?|told|asks?|asked|gives?|gave|helps?|helped|directs?|directed|sends?|"
            r"sent|reminds?|reminded|informs?|informed|lets|leaves|left|ensures?) the user\b"
            rf"|\b(?:the|a) user{_APOSTROPHE}s\b(?!\s+(?:manual|guide))",
            re.IGNORECASE,
        ),
    ),
    (
        ANNOUNCES_A_REWRITE,
        re.compile(
            rf"\bhere(?:{_APOSTROPHE}s| is)\s+(?:a|an|the|my)\s+(?:\w+\s+)?(?:revised|rewritten|re-written|"
            r"improved|updated|corrected|modified|edited|better|new)\s+(?:response|reply|answer|"
            r"draft|version)\b"
            rf"|\bI(?:{_APOSTROPHE}ve| have)?\s+(?:revised|rewritten|rephrased|reworded|edited|updated|"
            r"improved)\s+(?:the|my|this|that|its)\s+(?:response|reply|answer)\b(?!\s+(?:for|on|in)\b)"
            r"|\b(?:the|a|this) (?:better |good |improved )?(?:response|reply|answer) (?:should|"
            r"would|could) (?:be (?:more|less|rewritten|revised|clearer|shorter|longer|improved|"
            r"changed|concise|direct)|include|mention|avoid|address|acknowledge|explain|provide|"
            r"offer|state|focus|start|begin|not (?:include|mention|provide|give|suggest|state))\b",
            re.IGNORECASE,
        ),
    ),
)
_QUOTED = re.compile(r"[\"“]([^\"“”]+)[\"”]")
_QUOTE_WORDS = 5


def talks_about_the_response(revision: str, original: str | None = None) -> str | None:
    """Why ``revision`` reads as commentary about a response rather than a reply to the user
    (one of this module's reason constants), or None when it reads as a reply.

    ``original``, the response the revision rewrote, lets the check spot quotations of it.
    """
    for reason, pattern in _CHECKS:
        if pattern.search(revision):
            return reason
    if original and _quotes(revision, original):
        return QUOTES_THE_ORIGINAL
    return None


def _quotes(revision: str, original: str) -> bool:
    draft = _words(original)
    return any(
        len(quoted.split()) >= _QUOTE_WORDS and f" {quoted} " in f" {draft} "
        for quoted in (_words(span) for span in _QUOTED.findall(revision))
    )


def revision_problem(revision: str, original: str | None, examples: Iterable[str] = ()) -> str | None:
    """Why ``revision`` is no training target: :func:`talks_about_the_response`'s reason, or
    :data:`COPIES_AN_EXAMPLE`; None when it is one."""
    if reason := talks_about_the_response(revision, original):
        return reason
    return COPIES_AN_EXAMPLE if copies_an_example(revision, examples) else None


def copies_an_example(revision: str, examples: Iterable[str]) -> bool:
    """Whether ``revision`` shares a run of :data:`COPY_WORDS` consecutive words with one of
    ``examples`` (the few-shot dialogues' revisions)."""
    runs = _runs(revision)
    return any(runs & _runs(example) for example in examples)


def _runs(text: str) -> set[tuple[str, ...]]:
    words = _words(text).split()
    return {tuple(words[i : i + COPY_WORDS]) for i in range(len(words) - COPY_WORDS + 1)}


def _words(text: str) -> str:
    return " ".join(re.findall(rf"(?:\w|{_APOSTROPHE})+", text.lower()))
