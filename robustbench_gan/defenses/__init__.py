"""Defenses: importing this package registers every built-in defense.

``from robustbench_gan.defenses import AdversarialTraining`` gives the classes; ``make_defense("distillation",
temperature=100)`` builds one by registry name.
"""
from .base import DEFENSES, Defense, FitContext, NoDefense, ReportContext, make_defense
from .adversarial_training import AdversarialTraining
from .distillation import DefensiveDistillation
from .defense_gan import DefenseGan, DefenseGanProjection
from .gan_augmentation import GanAugmentation
from .magnet import MagNet
from .noise_training import NoiseTraining

Distillation = DefensiveDistillation  # the name the README gives

__all__ = ["DEFENSES", "AdversarialTraining", "Defense", "DefenseGan", "DefenseGanProjection", "DefensiveDistillation",
           "Distillation", "FitContext", "GanAugmentation", "MagNet", "NoDefense", "NoiseTraining", "ReportContext",
           "make_defense"]
