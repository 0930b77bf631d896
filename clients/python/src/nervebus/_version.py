"""The package version: the repository's VERSION (scripts/set-version.sh writes it here)."""

__version__ = "0.1.0"
