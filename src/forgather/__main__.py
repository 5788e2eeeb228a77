"""``python -m forgather`` runs the ``forgather`` command (same as ``python -m forgather.cli``).

Decision a reader may question: this module imports only
:mod:`forgather.cli.main`, never the package's heavy parts, so
``python -m forgather --help`` stays as quick as ``forgather --help``.
"""

import sys

from forgather.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
