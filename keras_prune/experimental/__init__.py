"""tfmot's `experimental` namespace: `combine` holds the pruning-preserving QAT scheme.

```python
import keras_prune as tfmot

scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
qat = tfmot.quantization.keras.quantize_apply(annotated, scheme)
```
"""

from keras_prune.experimental import combine

__all__ = ["combine"]
