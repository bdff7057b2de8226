"""Class-conditional and unconditional DCGANs: models, training, quality metrics, the generator cache, the 2-D toy
benchmarks, and the inverter I(x) -> z with the generator it inverts (what the natural adversarial search needs)."""
