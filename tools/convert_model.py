#!/usr/bin/env python3
"""Convert a model between Hugging Face and Forgather formats: ``forgather convert`` as a script.

    tools/convert_model.py ~/models/llama output_models/llama_fg --dtype bfloat16
    tools/convert_model.py output_models/llama_fg ~/models/llama_back

Same options and code as the command (``forgather.cli.convert``); see docs/models.md.
"""

import sys

from forgather.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
