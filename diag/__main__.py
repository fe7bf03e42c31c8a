"""``python -m diag`` and the ``diag`` console script run the CLI."""

import sys

from diag.report.worker import start_early


def main() -> None:
    """The plot worker's head start comes before typer's import (see ``start_early``)."""
    start_early(sys.argv[1:])
    from diag.cli import main as cli_main

    cli_main()


if __name__ == "__main__":  # pragma: no cover
    main()
