"""Notebook helpers: the original Forgather's ``forgather.nb.notebooks`` (``import forgather.nb.notebooks as nb``)."""
