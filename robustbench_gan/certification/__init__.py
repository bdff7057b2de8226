"""Certified robustness: randomized smoothing (Cohen, Rosenfeld & Kolter 2019) and SmoothAdv's attack on the
smoothed classifier (Salman et al. 2019)."""
from .smooth_attack import smooth_adv_pgd
from .smoothing import (
    ABSTAIN, CPU_DEFAULTS, Certificate, SmoothedClassifier, SmoothingConfig, abstain_rate, certified_accuracy, certify,
    clopper_pearson_lower, predict,
)

__all__ = ["ABSTAIN", "CPU_DEFAULTS", "Certificate", "SmoothedClassifier", "SmoothingConfig", "abstain_rate",
           "certified_accuracy", "certify", "clopper_pearson_lower", "predict", "smooth_adv_pgd"]
