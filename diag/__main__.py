"""``python -m diag`` runs the CLI."""

from diag.cli import app

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="diag")
