"""Class-conditional GANs: DCGAN models, training, quality metrics and the 2-D toy benchmarks."""
