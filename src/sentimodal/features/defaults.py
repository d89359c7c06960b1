"""The encoders and extraction settings used when nothing else is named: defined once here,
and cheap to import (the command line's help and the run configs read them)."""

#: pretrained and fully offline
DEFAULT_IMAGE_ENCODER = "efficientnet_lite0"
#: frozen sentence vectors: the text features of the feature-vector fusions and of `features`
FROZEN_TEXT_ENCODER = "minilm"
#: MiniLM's own WordPiece ids: the input of the fine-tuned transformer (the default model)
FINE_TUNED_TEXT_ENCODER = "minilm_tokens"
#: rows per encoder batch, and loading processes, for every extraction unless a run says else
FEATURE_BATCH_SIZE = 64
FEATURE_WORKERS = 2
