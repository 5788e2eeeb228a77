#!/usr/bin/env python3
"""Add tokens to a model's vocabulary: ``forgather update-vocab`` as a script.

    tools/update_vocab.py --add-tokens tokens.yaml ~/models/llama ~/models/llama_chat
    tools/update_vocab.py --pad-token "<|pad|>" --special-token "<|im_start|>" SRC DST

Same options and code as the command (``forgather.cli.convert``); see docs/models.md.
"""

import sys

from forgather.cli import main

if __name__ == "__main__":
    sys.exit(main(["update-vocab", *sys.argv[1:]]))
