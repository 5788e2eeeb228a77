"""Loading the config package must not import heavy libraries (startup matters)."""

import subprocess
import sys


def test_import_config_is_light():
    code = (
        "import sys, forgather.config\n"
        "from forgather.config import ConfigEnvironment\n"
        "cfg = ConfigEnvironment([]).load_from_string('a: !call:torch.nn:Linear [1, 2]\\n')\n"
        "cfg.to_yaml()\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
