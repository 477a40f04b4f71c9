"""Version of the biobank package."""

__version__ = "0.1.0"
