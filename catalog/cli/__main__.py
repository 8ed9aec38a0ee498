"""``python -m catalog.cli``: the same as the ``capahub`` command."""

from catalog.cli import main

main()
