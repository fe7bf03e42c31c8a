"""``python -m diag`` runs the CLI."""

from diag.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
