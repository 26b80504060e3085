"""``python -m streamops``: the command line."""

from .cli import main

main()
