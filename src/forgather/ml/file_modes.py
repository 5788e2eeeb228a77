"""Weights files as readable as the umask allows, like every other file Forgather writes.

safetensors 0.8 writes a file through a temporary file created with mode 0600
and renames it into place (safetensors/safetensors#782), so ``model.safetensors``
alone came out private: a server, container or colleague running as another
user could not read a model this user trained, while its ``config.json`` was
readable. Every place that writes safetensors (directly or through
``save_pretrained``) passes the file or directory here afterwards.
"""

from __future__ import annotations

import os
import stat


def new_file_mode() -> int:
    """The mode a newly created file gets under this process's umask (0666 & ~umask)."""
    try:
        with open("/proc/self/status") as status:  # Linux: read it without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly visible to other threads)
    os.umask(mask)
    return 0o666 & ~mask


def share_weights(path: str | os.PathLike) -> None:
    """Give a ``.safetensors`` file, or every one in a directory, the mode of a new file.

    Called right after writing them; a file is only ever widened up to that
    mode, so a private umask (0077) keeps weights private.
    """
    path = os.fspath(path)
    if os.path.isdir(path):  # what save_pretrained wrote: its own files, not a model dir's runs
        files = [
            e.path for e in os.scandir(path) if e.name.endswith(".safetensors") and e.is_file()
        ]
    else:
        files = [path]
    mode = new_file_mode()
    for file in files:
        try:
            current = stat.S_IMODE(os.stat(file).st_mode)
            if current != mode and current & mode == current:  # only ever widen to the umask's
                os.chmod(file, mode)
        except OSError:
            continue
