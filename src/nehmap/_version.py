"""nehmap's version (read by pyproject.toml and ``nehmap --version``)."""

__version__ = "0.1.0.dev0"
