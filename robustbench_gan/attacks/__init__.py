"""Attacks: importing this package registers every built-in attack."""
from .base import ATTACKS, Attack, Goal, make_attack
from . import fgsm, noise, pgd, substitute  # noqa: F401  (registration)

__all__ = ["ATTACKS", "Attack", "Goal", "make_attack"]
