"""Training, distillation and pruning."""

from .loop import TrainConfig, TrainingInterrupted, parse_duration, train

__all__ = ["TrainConfig", "TrainingInterrupted", "parse_duration", "train"]
