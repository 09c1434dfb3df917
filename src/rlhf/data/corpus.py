"""A generated corpus of short review-like sentences, shipped as code.

It trains the built-in tokenizer and pretrains the tiny demo model, so nothing is downloaded. The
generator is deterministic for a given ``seed``; positive and negative sentences are balanced, which
gives the sentiment demo a base model that writes both kinds.
"""

from __future__ import annotations

import random

SUBJECTS = [
    "the movie", "this film", "the plot", "the acting", "the story", "the ending", "the soundtrack",
    "the director", "the cast", "the script", "the dialogue", "the sequel", "this show", "the villain",
    "the hero", "the music", "the camera work", "the first half", "the final scene", "the characters",
]
POSITIVE = [
    "great", "wonderful", "brilliant", "beautiful", "funny", "charming", "excellent", "moving",
    "delightful", "amazing", "fantastic", "lovely", "clever", "warm", "superb", "fun", "good", "best",
    "inspiring", "touching",
]
NEGATIVE = [
    "terrible", "boring", "awful", "dull", "bad", "weak", "horrible", "stupid", "painful", "ugly",
    "messy", "sad", "worst", "poor", "annoying", "disappointing", "slow", "silly", "lifeless", "bland",
]
ADVERBS = ["really", "truly", "quite", "very", "so", "simply", "rather", "surprisingly", "pretty", "just"]
PEOPLE = ["I", "we", "my friend", "my family", "everyone", "the audience", "my sister", "nobody"]
POSITIVE_VERBS = ["loved", "enjoyed", "liked", "adored", "admired", "recommend"]
NEGATIVE_VERBS = ["hated", "disliked", "regretted", "could not stand", "forgot", "walked out of"]
OPENERS = ["This movie is", "The film was", "I think", "Honestly,", "Overall,", "In the end,", "Sadly,", "Luckily,"]

_POSITIVE_TEMPLATES = [
    "{subj} is {adv} {pos}.",
    "{subj} was {pos} and {pos2}.",
    "{person} {pverb} {subj}, it was {adv} {pos}.",
    "{opener} {subj} is {pos}, and {subj2} is {pos2}.",
    "What a {pos} film! {person} {pverb} it.",
    "{subj} felt {adv} {pos} from start to finish.",
]
_NEGATIVE_TEMPLATES = [
    "{subj} is {adv} {neg}.",
    "{subj} was {neg} and {neg2}.",
    "{person} {nverb} {subj}, it was {adv} {neg}.",
    "{opener} {subj} is {neg}, and {subj2} is {neg2}.",
    "What a {neg} film! {person} {nverb} it.",
    "{subj} felt {adv} {neg} from start to finish.",
]


def _fill(template: str, rng: random.Random) -> str:
    text = template.format(
        subj=rng.choice(SUBJECTS), subj2=rng.choice(SUBJECTS), adv=rng.choice(ADVERBS),
        pos=rng.choice(POSITIVE), pos2=rng.choice(POSITIVE), neg=rng.choice(NEGATIVE),
        neg2=rng.choice(NEGATIVE), person=rng.choice(PEOPLE), pverb=rng.choice(POSITIVE_VERBS),
        nverb=rng.choice(NEGATIVE_VERBS), opener=rng.choice(OPENERS),
    )
    return text[0].upper() + text[1:]


def review_sentences(n: int = 2000, seed: int = 0) -> list[str]:
    """``n`` short review-like sentences, half positive and half negative, in a seeded order.

    >>> len(review_sentences(10)), review_sentences(4, seed=1) == review_sentences(4, seed=1)
    (10, True)
    """
    rng = random.Random(seed)
    sentences = []
    for i in range(n):
        templates = _POSITIVE_TEMPLATES if i % 2 == 0 else _NEGATIVE_TEMPLATES
        sentences.append(_fill(rng.choice(templates), rng))
    rng.shuffle(sentences)
    return sentences


def labelled_review_sentences(n: int = 2000, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (sentence, label) pairs, label 1 for positive and 0 for negative, in a seeded order."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = int(i % 2 == 0)
        templates = _POSITIVE_TEMPLATES if label else _NEGATIVE_TEMPLATES
        rows.append((_fill(rng.choice(templates), rng), label))
    rng.shuffle(rows)
    return rows


_PAIR_TEMPLATES = [  # (prompt, completion): the completion starts with a space, on a token boundary
    ("{Subj} was", " {adv} {word}."),
    ("{Subj} is", " {word} and {word2}."),
    ("{Person} thought {subj} was", " {word}, {adv} {word2}."),
    ("{Opener} {subj} felt", " {adv} {word} from start to finish."),
]


def review_preference_pairs(n: int = 2000, seed: int = 0) -> list[dict]:
    """``n`` preference pairs ``{prompt, chosen, rejected}``: one review opening, a positive and a negative ending.

    The two endings share the template and differ in their sentiment words, so a pair is decided by
    sentiment alone (the DPO and pairwise reward-model demo data).

    >>> sorted(review_preference_pairs(1)[0])
    ['chosen', 'prompt', 'rejected']
    """
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        prompt, ending = rng.choice(_PAIR_TEMPLATES)
        subj, person, opener, adv = (rng.choice(SUBJECTS), rng.choice(PEOPLE), rng.choice(OPENERS),
                                     rng.choice(ADVERBS))
        prompt = prompt.format(Subj=subj.capitalize(), subj=subj, Person=person.capitalize(), Opener=opener)
        chosen = ending.format(adv=adv, word=rng.choice(POSITIVE), word2=rng.choice(POSITIVE))
        rejected = ending.format(adv=adv, word=rng.choice(NEGATIVE), word2=rng.choice(NEGATIVE))
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs


def review_conversations(n: int = 600, seed: int = 0) -> list[dict]:
    """``n`` chats ``{messages: [system, user, assistant]}``: a request for a positive or negative review and
    a review of that sentiment (TRL's conversational format, for chat-format SFT).

    >>> [m["role"] for m in review_conversations(1)[0]["messages"]]
    ['system', 'user', 'assistant']
    """
    rng = random.Random(seed)
    chats = []
    for i in range(n):
        positive = i % 2 == 0
        request = f"Write a {'positive' if positive else 'negative'} review of {rng.choice(SUBJECTS)}."
        review = _fill(rng.choice(_POSITIVE_TEMPLATES if positive else _NEGATIVE_TEMPLATES), rng)
        chats.append({"messages": [{"role": "system", "content": "You write one-sentence movie reviews."},
                                   {"role": "user", "content": request},
                                   {"role": "assistant", "content": review}]})
    rng.shuffle(chats)
    return chats
