"""biobank: a genomics and biobank workbench."""

from biobank.__about__ import __version__

__all__ = ["__version__"]
