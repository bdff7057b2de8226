"""Class-conditional and unconditional DCGANs: models, training, quality metrics, the generator cache and the 2-D toy
benchmarks."""
