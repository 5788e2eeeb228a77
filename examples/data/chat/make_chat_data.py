"""Write the small chat dataset in this directory (conversations.jsonl, pairs.jsonl).

Every conversation is generated from the facts below by this script (no outside
text), deterministically: rerunning it rewrites the same files. The assistant is
terse and always right, so a tiny model fine-tuned on it shows learning quickly.

    python examples/data/chat/make_chat_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent

UNITS = [
    ("kilometres", "metres", 1000),
    ("metres", "centimetres", 100),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("kilograms", "grams", 1000),
    ("litres", "millilitres", 1000),
    ("days", "hours", 24),
    ("weeks", "days", 7),
]

WORDS = {
    "lantern": "a portable lamp with a case that protects the flame or bulb",
    "harbour": "a sheltered stretch of water where ships can anchor safely",
    "meadow": "a field of grass and wild flowers, often used for hay",
    "orchard": "a piece of land planted with fruit trees",
    "glacier": "a slow river of ice formed from compacted snow",
    "compass": "an instrument whose needle points to magnetic north",
    "pantry": "a small room or cupboard for storing food",
    "ferry": "a boat that carries people and vehicles across water on a regular route",
    "quill": "a pen made from a large bird feather",
    "anvil": "a heavy iron block on which a smith hammers metal",
    "loom": "a frame for weaving thread into cloth",
    "beacon": "a light or fire set up as a signal or warning",
    "canyon": "a deep valley with steep sides, usually cut by a river",
    "tide": "the regular rise and fall of the sea caused by the moon",
    "kiln": "an oven for firing pottery or bricks",
}

OPPOSITES = [
    ("hot", "cold"),
    ("early", "late"),
    ("empty", "full"),
    ("heavy", "light"),
    ("open", "closed"),
    ("quiet", "loud"),
    ("narrow", "wide"),
    ("ancient", "modern"),
    ("shallow", "deep"),
    ("rough", "smooth"),
]

GREETINGS = [
    ("Hello!", "Hello! What can I help you with?"),
    ("Good morning.", "Good morning! How can I help?"),
    ("Hi there, are you a bot?", "Yes, I am a small assistant model. Ask me something."),
    ("Thanks for the help.", "You are welcome."),
    ("Goodbye!", "Goodbye, and good luck."),
]

SYSTEMS = [
    "You are a concise assistant.",
    "Answer in one short sentence.",
    "You are a helpful tutor for children.",
]


def arithmetic(rng: random.Random) -> list[dict]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice(["+", "-", "*"])
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    word = {"+": "plus", "-": "minus", "*": "times"}[op]
    ask = rng.choice([f"What is {a} {op} {b}?", f"Compute {a} {word} {b}.", f"{a} {op} {b} = ?"])
    return [
        {"role": "user", "content": ask},
        {"role": "assistant", "content": f"{a} {op} {b} = {value}."},
    ]


def conversion(rng: random.Random) -> list[dict]:
    big, small, factor = rng.choice(UNITS)
    n = rng.randint(2, 12)
    return [
        {"role": "user", "content": f"How many {small} are in {n} {big}?"},
        {"role": "assistant", "content": f"There are {n * factor} {small} in {n} {big}."},
    ]


def definition(rng: random.Random) -> list[dict]:
    word = rng.choice(sorted(WORDS))
    article = "an" if word[0] in "aeiou" else "a"
    return [
        {"role": "user", "content": rng.choice([f"What is {article} {word}?", f"Define {word}."])},
        {"role": "assistant", "content": f"{article.capitalize()} {word} is {WORDS[word]}."},
    ]


def spelling(rng: random.Random) -> list[dict]:
    word = rng.choice(sorted(WORDS))
    if rng.random() < 0.5:
        return [
            {"role": "user", "content": f"Spell '{word}' backwards."},
            {"role": "assistant", "content": f"'{word}' backwards is '{word[::-1]}'."},
        ]
    return [
        {"role": "user", "content": f"How many letters are in the word '{word}'?"},
        {"role": "assistant", "content": f"'{word}' has {len(word)} letters."},
    ]


def opposite(rng: random.Random) -> list[dict]:
    a, b = rng.choice(OPPOSITES)
    if rng.random() < 0.5:
        a, b = b, a
    return [
        {"role": "user", "content": f"What is the opposite of '{a}'?"},
        {"role": "assistant", "content": f"The opposite of '{a}' is '{b}'."},
    ]


def multi_turn(rng: random.Random) -> list[dict]:
    hello, reply = rng.choice(GREETINGS[:3])
    first = rng.choice([arithmetic, conversion, definition])(rng)
    second = rng.choice([spelling, opposite])(rng)
    return [
        {"role": "user", "content": hello},
        {"role": "assistant", "content": reply},
        *first,
        *second,
        {"role": "user", "content": GREETINGS[3][0]},
        {"role": "assistant", "content": GREETINGS[3][1]},
    ]


def conversation(rng: random.Random) -> list[dict]:
    kind = rng.choice([arithmetic, conversion, definition, spelling, opposite, multi_turn])
    messages = kind(rng)
    if rng.random() < 0.25:
        messages.insert(0, {"role": "system", "content": rng.choice(SYSTEMS)})
    return messages


def main() -> None:
    rng = random.Random(16)
    with open(HERE / "conversations.jsonl", "w") as f:
        for _ in range(160):
            f.write(json.dumps({"messages": conversation(rng)}) + "\n")
    with open(HERE / "pairs.jsonl", "w") as f:
        for _ in range(40):
            user, assistant = rng.choice([arithmetic, conversion, definition, opposite])(rng)
            f.write(
                json.dumps({"prompt": user["content"], "completion": assistant["content"]}) + "\n"
            )


if __name__ == "__main__":
    main()
