"""Attacks: importing this package registers every built-in attack (and the ``art:`` prefix for ART's). Scoring
them is :mod:`robustbench_gan.evaluation`'s.

``from robustbench_gan.attacks import FGSM, PGD`` gives the classes; ``make_attack("pgd", steps=40)`` builds one
by registry name. Every attack takes the classifier per call: ``PGD(steps=40)(clf, x, Goal(y), eps=0.3)``.
"""
from .base import ATTACKS, ROLES, Attack, AttackResult, Goal, RunContext, make_attack
from .apgd import APGD, APGDT
from .autoattack import AutoAttack
from .fab import FAB, FABT
from .fgsm import FGSM
from .latent import LatentAttack
from .minimum_norm import DDN, FMN, FABMinimumNorm
from .corruption import Corruption
from .randomized_smoothing import Certify, SmoothAdvPGD
from .natural import NaturalAdversary, latent_search
from .noise import NoiseProbe, UniformNoise
from .pgd import BIM, PGD
from .square import Square
from .substitute import Oracle, SubstituteAttack
from .art import ArtAttack

Substitute = SubstituteAttack  # the name the README gives

__all__ = [
    "APGD", "APGDT", "ATTACKS", "AutoAttack", "ROLES", "ArtAttack", "Attack", "AttackResult", "BIM", "Certify",
    "Corruption", "DDN", "FAB",
    "FABMinimumNorm", "FABT", "FMN",
    "FGSM", "Goal", "LatentAttack", "NaturalAdversary", "NoiseProbe", "Oracle", "PGD", "RunContext", "SmoothAdvPGD",
    "Square", "Substitute", "SubstituteAttack", "UniformNoise", "latent_search", "make_attack",
]
