"""TensorBoard scalars for pruning: model sparsity, per-weight sparsity and threshold.

Written with TensorBoard's own TensorFlow-free `tensorboard.summary.Writer`, so
logging works on every Keras backend.
"""

import importlib.util

from keras import ops

_INSTALL_HINT = (
    "Writing pruning summaries (`log_dir=`) needs the `tensorboard` package. "
    "Install it with `pip install tensorboard` or `pip install keras-prune[tensorboard]`."
)


def check_tensorboard():
    """Raises ImportError now, not after the first epoch, when tensorboard is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ImportError(_INSTALL_HINT)


def _writer(log_dir):
    try:
        from tensorboard.summary import Writer
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    return Writer(log_dir)


class SummaryWriter:
    """Writes one scalar per model, and per pruned weight, for a list of wrappers."""

    def __init__(self, log_dir):
        check_tensorboard()
        self.log_dir = str(log_dir)
        self._writer = None

    def write(self, wrappers, step, model_sparsity):
        if self._writer is None:
            self._writer = _writer(self.log_dir)
        self._writer.add_scalar("pruning/sparsity", float(model_sparsity), step=step)
        for wrapper in wrappers:
            for weight, mask, threshold in zip(
                wrapper.prunable_weights, wrapper.masks, wrapper.thresholds
            ):
                tag = f"{wrapper.name}/{weight.path.split('/')[-1]}"
                kept = float(ops.convert_to_numpy(ops.mean(ops.cast(mask, "float32"))))
                self._writer.add_scalar(f"{tag}/sparsity", 1.0 - kept, step=step)
                value = float(ops.convert_to_numpy(threshold))
                self._writer.add_scalar(f"{tag}/threshold", value, step=step)
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
