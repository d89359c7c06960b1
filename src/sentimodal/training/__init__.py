"""Training: losses, optimisers, the seeded training loop with early stopping, batched
prediction, and fine-tuning on confident examples (imported on first use, so that light
submodules such as ``.run_config`` load without torch)."""

from sentimodal.lazy import lazy_exports

_EXPORTS = {
    "Data": "sentimodal.models.batches",
    "ConfidentResult": "sentimodal.training.confident",
    "confident_mask": "sentimodal.training.confident",
    "fine_tune_confident": "sentimodal.training.confident",
    "extract_embeddings": "sentimodal.models.forward",
    "predict_labels": "sentimodal.models.forward",
    "predict_outputs": "sentimodal.models.forward",
    "predict_scores": "sentimodal.models.forward",
    "cosine_proximity": "sentimodal.training.losses",
    "cross_entropy": "sentimodal.training.losses",
    "hinge_rank": "sentimodal.training.losses",
    "make_loss": "sentimodal.training.losses",
    "mse": "sentimodal.training.losses",
    "make_optimizer": "sentimodal.training.optim",
    "ConfidentConfig": "sentimodal.training.train_config",
    "TrainConfig": "sentimodal.training.train_config",
    "TrainResult": "sentimodal.training.trainer",
    "fit": "sentimodal.training.trainer",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
