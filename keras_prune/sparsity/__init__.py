"""tfmot's namespace: `keras_prune.sparsity.keras` holds `tfmot.sparsity.keras`'s names.

Migrating a tfmot program can be a change of imports only:

```python
import keras                    # was: import tf_keras as keras
import keras_prune as tfmot     # was: import tensorflow_model_optimization as tfmot

prune = tfmot.sparsity.keras.prune_low_magnitude
```
"""

from keras_prune.sparsity import keras

__all__ = ["keras"]
