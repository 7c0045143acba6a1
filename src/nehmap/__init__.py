"""nehmap: probability maps of the non-enhancing hypercellular tumour (NEH) from brain MRI."""

from nehmap._version import __version__

__all__ = ["__version__"]
