"""Fine-tuning, framework-neutral: the recipe, the schedule formula, the batch plan, data and metrics.

Both trainers (`bertcnn_torch.train`, `bertcnn_tf.train`) take what is decided here, so
the two frameworks see the same batches in the same order at the same learning rates.
"""

from parity.training.plan import batch_plan
from parity.training.recipe import TrainingRecipe
from parity.training.schedule import linear_warmup_decay

__all__ = ["TrainingRecipe", "batch_plan", "linear_warmup_decay"]
