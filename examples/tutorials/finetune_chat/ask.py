"""Ask the served model one question through the ``openai`` client's chat call.

    python ask.py "How many minutes are in 3 hours?"
    python ask.py --base-url http://127.0.0.1:8001/v1 "Define kiln."

The model name is whatever the server serves (the first of /v1/models).
"""

from __future__ import annotations

import argparse

from openai import OpenAI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--max-tokens", type=int, default=40)
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key="unused")  # the server needs no key
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": args.question}],
        max_tokens=args.max_tokens,
        temperature=0.0,
    )
    print(reply.choices[0].message.content)


if __name__ == "__main__":
    main()
