"""`python -m cleanday.cli`: the `cleanday` command (the embedded stack starts its worker so)."""

from cleanday.cli import main

main()
