"""CLI subcommands, one module each, registered by :mod:`imagingkit.cli`."""
