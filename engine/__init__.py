"""EHC plan casework engine: statutory workflows as data, a pure core that decides, a thin shell that persists."""

__version__ = "0.1.0"
