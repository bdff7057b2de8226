"""What each sanity flag means and where it comes from (no torch: the report imports this)."""
from __future__ import annotations

from typing import Any

Flag = dict[str, Any]

EXPLANATIONS: dict[str, tuple[str, str]] = {
    "accuracy-rises-with-eps": (
        "A larger perturbation budget can only help the attacker, so accuracy must not rise with eps. If it does, "
        "the attack is failing to optimise (often gradient masking) and the numbers at small eps are suspect too.",
        "Carlini et al. 2019, On Evaluating Adversarial Robustness, sec. 5",
    ),
    "single-step-beats-iterative": (
        "An iterative attack includes the single-step attack as its first step, so it should be at least as strong. "
        "A weaker iterative attack points to obfuscated gradients or a mis-configured attack.",
        "Athalye, Carlini & Wagner 2018, Obfuscated Gradients Give a False Sense of Security, sec. 3",
    ),
    "single-step-far-above-iterative": (
        "The model resists the single-step attack far better than an iterative one: its loss surface is locally "
        "curved so one gradient step is misleading (typical of FGSM adversarial training). Robustness measured "
        "with the single-step attack is overstated; trust the iterative number.",
        "Tramer et al. 2018, Ensemble Adversarial Training, sec. 3; Wong et al. 2020 (catastrophic overfitting)",
    ),
    "robust-at-huge-eps": (
        "With a budget as large as the whole pixel range any input can be turned into any other, so an attack that "
        "follows real gradients reaches (near) 0% accuracy. High accuracy there means the gradient does not "
        "lead the attack anywhere.",
        "Carlini et al. 2019, sec. 5; ART's security-curve check (Nicolae et al. 2018)",
    ),
    "white-box-above-transfer": (
        "Examples crafted on another model (transfer, a weaker black-box threat) fool this model more than "
        "examples crafted on the model itself with full gradient access: the white-box gradients are masked.",
        "Carlini & Wagner 2017; Tramer et al. 2018; Athalye et al. 2018",
    ),
    "black-box-below-white-box": (
        "An attack that only sees the model's outputs (Square, the substitute attack) fools it more than the "
        "white-box attacks that follow its gradients, beyond the confidence intervals: the gradients mislead "
        "(masking or obfuscation). Within an AutoAttack cascade the stricter square-after-gradients check applies.",
        "Croce & Hein 2020 (AutoAttack, flags_doc); Athalye, Carlini & Wagner 2018",
    ),
    "square-after-gradients": (
        "In the AutoAttack cascade, Square (which only queries the model's outputs) fooled more than 0.2% of the "
        "samples (0.002 * n) that APGD and FAB, with full gradient access, had left standing; AutoAttack raises "
        "the same warning. A black-box attack succeeding where the gradient attacks failed points to masked or "
        "obfuscated gradients, and the cascade's number may still overstate robustness: run Square with more "
        "queries and restarts, and design an adaptive attack (a margin loss, BPDA, EOT) for this defense.",
        "Croce & Hein 2020, Reliable Evaluation of Adversarial Robustness (AutoAttack, check_square_sr and "
        "flags_doc); Carlini et al. 2019, On Evaluating Adversarial Robustness, sec. 5",
    ),
    "zero-gradients": (
        "Correctly classified inputs have an all-zero or non-finite input gradient, so gradient attacks cannot move "
        "them. Checked, as AutoAttack does, with the DLR loss, which is invariant to the logits' scale: any zero "
        "there means part of the model blocks the gradient (a no_grad region, input quantisation, a detached "
        "purification); approximate that part with a differentiable stand-in (BPDA) or use black-box attacks "
        "(Square). Also raised when many inputs have a zero cross-entropy gradient but a non-zero DLR one: a "
        "saturated softmax (defensive distillation) stalls the CE-loss attacks; use the margin or DLR loss.",
        "Croce & Hein 2020 (AutoAttack flags_doc, zero gradient); Carlini & Wagner 2016, Defensive Distillation is "
        "Not Robust to Adversarial Examples; Athalye, Carlini & Wagner 2018 (BPDA)",
    ),
    "input-scale": (
        "The classifier labels its clean test images far better when they are given in another pixel range or "
        "without the declared normalization: it was trained on inputs scaled differently from what it is fed here, "
        "so every number of this classifier (clean and robust accuracy, the flags) is wrong. Give the images in the "
        "range the model was trained on, as the message says, and run again.",
        "Carlini et al. 2019, On Evaluating Adversarial Robustness, sec. 4 (check the clean accuracy first)",
    ),
    "outputs-are-probabilities": (
        "The model returns probabilities (rows in [0, 1] summing to 1), not logits. Cross-entropy on probabilities "
        "has tiny gradients, weakening every gradient attack; return logits instead.",
        "Carlini & Wagner 2017, Towards Evaluating the Robustness of Neural Networks, sec. 4",
    ),
    "nondeterministic-outputs": (
        "Five eval-mode forward passes on the same inputs disagree beyond float noise (unit-normalised logits more "
        "than 1e-4 apart in L2) or in how many inputs they classify correctly: the model is randomized (or dropout "
        "was left on). Attacks must then average gradients over the randomness (Expectation over Transformation): "
        "give the gradient attacks eot_samples (e.g. 20), or use AutoAttack's rand version.",
        "Athalye, Carlini & Wagner 2018, sec. 4.2 (EOT); Croce & Hein 2020 (AutoAttack check_randomized, flags_doc)",
    ),
    "dynamic-forward": (
        "The model's forward pass, run in eval mode without gradients, called autograd (grad or backward), built "
        "an autograd graph, or changed the model's parameters or buffers: the defense optimises at inference time "
        "(a purification by gradient descent, test-time training) or keeps state between queries. Standard attacks "
        "differentiate such an inner optimisation naively or see a moving target, so their numbers overstate "
        "robustness. Evaluate with adaptive attacks: BPDA or an unrolled view of the optimisation (adaptive = "
        "\"bpda\" / \"unroll\" on PGD/APGD), the latent attack for generative purifiers, and a fixed state or "
        "the state updates attacked as part of the model.",
        "Croce & Hein 2020 (AutoAttack check_dynamic, flags_doc); Tramer et al. 2020, On Adaptive Attacks to "
        "Adversarial Example Defenses; Croce et al. 2022, Evaluating the Adversarial Robustness of Adaptive "
        "Test-time Defenses",
    ),
    "minimum-norm-curve-above-fixed-eps": (
        "A minimum-norm attack's curve gives robust accuracy at every eps from each sample's smallest adversarial "
        "distance found. Another attack found adversarial examples within an eps for clearly more samples, so the "
        "minimum-norm attack missed perturbations that exist: its curve (and its optimality) overstates robustness. "
        "Give it more steps or restarts, or trust the lower number.",
        "Cinà et al. 2024, AttackBench: Evaluating Gradient-based Attacks for Adversarial Examples; Carlini et al. "
        "2019, On Evaluating Adversarial Robustness, sec. 5",
    ),
    "certified-above-empirical": (
        "A randomized-smoothing certificate at radius r is a lower bound on the accuracy the smoothed classifier "
        "keeps against any perturbation of L2 norm at most r (with probability 1 - alpha per sample). An attack on "
        "the same smoothed classifier found clearly more samples it changes within r: the certificate is wrong "
        "(sigma or the radius formula do not match the classifier that was attacked, or the noise is not the one "
        "certified), or the attack scored another classifier.",
        "Cohen, Rosenfeld & Kolter 2019, Certified Adversarial Robustness via Randomized Smoothing, Theorem 1; "
        "Salman et al. 2019, Provably Robust Deep Learning via Adversarially Trained Smoothed Classifiers",
    ),
    "corruption-above-clean": (
        "A common corruption (noise, blur, weather, digital) removes information from an image; a classifier "
        "that labels the corrupted images clearly better than the clean ones is almost always fed inputs scaled "
        "differently from its training data, or the corruption does not do what it says.",
        "Hendrycks & Dietterich 2019, Benchmarking Neural Network Robustness to Common Corruptions and Perturbations",
    ),
    "naive-attacks-only-on-purifier": (
        "The defense transforms its input before classifying it (input purification: Defense-GAN's projection, an "
        "autoencoder reformer), and every white-box attack differentiated straight through that transformation. "
        "Its gradient is zero or misleading (an inner optimisation, a non-differentiable step), so the attacks "
        "fail for the wrong reason. Evaluate with an adaptive attack: BPDA (adaptive = \"bpda\"), a gradient view "
        "the purifier offers (adaptive = \"unroll\"), or the latent attack on generative purifiers.",
        "Athalye, Carlini & Wagner 2018, Obfuscated Gradients Give a False Sense of Security, sec. 4.1 and 5.3; "
        "Tramer et al. 2020, On Adaptive Attacks to Adversarial Example Defenses",
    ),
}


def make_flag(check: str, model: str, defense: str, attack: str, message: str) -> Flag:
    explanation, reference = EXPLANATIONS[check]
    return {"check": check, "model": model, "defense": defense, "attack": attack, "message": message,
            "explanation": explanation, "reference": reference}
