"""Defenses: importing this package registers every built-in defense."""
from .base import DEFENSES, Defense, NoDefense, make_defense

__all__ = ["DEFENSES", "Defense", "NoDefense", "make_defense"]
