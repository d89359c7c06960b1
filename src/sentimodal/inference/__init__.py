"""Using a trained model: raw posts in, scores out (``posts``: the per-batch work, for a torch
network or an ONNX graph alike), streaming prediction over tables of any size (``stream``), and
the ONNX runtime (``onnx_runtime``). Nothing here imports ``training``: a model directory is
served without the code that trained it.
"""
