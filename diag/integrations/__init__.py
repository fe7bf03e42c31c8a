"""Framework adapters for ``diag.watch``; each imports its framework lazily and names the
extra to install when it is missing."""
