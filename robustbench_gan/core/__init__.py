"""The bottom layer: file writing with checksums, statistics, parameter validation and device resolution.

Nothing here imports another module of the package except :mod:`robustbench_gan.errors`.
"""
