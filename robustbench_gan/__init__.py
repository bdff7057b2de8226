"""robustbench_gan: robustness benchmarks for image classifiers."""
