"""Shipping a fitted model in another form: ``onnx`` writes one ONNX graph (and what its
runtime needs beside it) from a model directory, so that ``inference.onnx_runtime`` can serve it
without torch or training code."""
