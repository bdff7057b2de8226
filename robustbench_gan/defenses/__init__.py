"""Defenses: importing this package registers every built-in defense."""
from .base import DEFENSES, Defense, NoDefense, make_defense
from . import adversarial_training, distillation, gan_augmentation  # noqa: F401  (registration)

__all__ = ["DEFENSES", "Defense", "NoDefense", "make_defense"]
