"""``python -m forgather.cli`` runs the ``forgather`` command."""

import sys

from forgather.cli.main import main

sys.exit(main())
