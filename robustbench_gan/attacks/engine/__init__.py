"""The machinery attacks share (not attacks themselves): the one gradient-descent engine (:mod:`.descent`), the
norm hooks (:mod:`.norms`) and attack precision (:mod:`.precision`)."""
