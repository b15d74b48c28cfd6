"""trackrank: learn to rank music tracks by their audio with a triplet loss."""

__version__ = "0.1.0"
