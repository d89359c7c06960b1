"""Using a trained model: per-batch prediction of raw posts (``posts``), streaming prediction
over tables of any size (``stream``), and the runtimes a model directory can run on.

Nothing is imported here, so that the estimator can use ``posts`` without a cycle.
"""
