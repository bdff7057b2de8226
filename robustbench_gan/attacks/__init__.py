"""Attacks: importing this package registers every built-in attack (and the ``art:`` prefix for ART's).

``from robustbench_gan.attacks import FGSM, PGD`` gives the classes; ``make_attack("pgd", steps=40)`` builds one
by registry name. Every attack takes the classifier per call: ``PGD(steps=40)(clf, x, Goal(y), eps=0.3)``.
"""
from .base import ATTACKS, ROLES, Attack, Goal, make_attack
from .apgd import APGD, APGDT
from .autoattack import AutoAttack
from .evaluate import evaluate_attack
from .fab import FAB, FABT
from .fgsm import FGSM
from .latent import LatentAttack
from .natural import NaturalAdversary, latent_search
from .noise import NoiseAttack, NoiseProbe, UniformNoise
from .outcome import Outcome
from .pgd import BIM, PGD
from .square import Square
from .substitute import Oracle, SubstituteAttack
from .art import ArtAttack
from .transfer import Crafted, craft, evaluate_transfer

Substitute = SubstituteAttack

__all__ = [
    "APGD", "APGDT", "ATTACKS", "AutoAttack", "ROLES", "ArtAttack", "Attack", "BIM", "Crafted", "FAB", "FABT", "FGSM",
    "Goal", "LatentAttack", "NaturalAdversary", "NoiseAttack", "NoiseProbe", "Oracle", "Outcome", "PGD", "Square",
    "Substitute", "SubstituteAttack", "UniformNoise", "craft", "evaluate_attack", "evaluate_transfer", "latent_search",
    "make_attack",
]
