"""``python -m samembed`` (also what ``torchrun ... -m samembed`` runs)."""

from .cli import main

main()
