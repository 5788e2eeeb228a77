#!/usr/bin/env python3
"""Merge a LoRA adapter into its base model: ``forgather merge-lora`` as a script.

    tools/merge_lora.py output_models/chat_lora output_models/chat
    tools/merge_lora.py ADAPTER_DIR OUT --base-model models/llama --dtype bfloat16

Same options and code as the command (``forgather.cli.finetune``); see
docs/training.md, "Fine-tuning".
"""

import sys

from forgather.cli import main

if __name__ == "__main__":
    sys.exit(main(["merge-lora", *sys.argv[1:]]))
