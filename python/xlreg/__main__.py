"""``python -m xlreg ...`` runs the ``xlreg`` command."""

from ._cli import main

main()
