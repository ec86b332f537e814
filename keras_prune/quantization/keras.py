"""The names of `tfmot.quantization.keras`, backed by keras_prune (Keras 3, any backend).

```python
import keras_prune as tfmot     # was: import tensorflow_model_optimization as tfmot

q_aware = tfmot.quantization.keras.quantize_model(model)
```
"""

import types

from keras_prune.quantization.apply import (
    Default8BitQuantizeScheme,
    quantize_annotate_layer,
    quantize_annotate_model,
    quantize_apply,
    quantize_model,
    quantize_scope,
)
from keras_prune.quantization.configs import Default8BitQuantizeConfig, QuantizeConfig
from keras_prune.quantization.quantizers import (
    LastValueQuantizer,
    MovingAverageQuantizer,
    Quantizer,
)
from keras_prune.quantization.wrapper import QuantizeAnnotate, QuantizeWrapper

# tfmot's sub-namespaces (`quantizers.LastValueQuantizer`, `default_8bit.Default8BitQuantizeScheme`).
quantizers = types.SimpleNamespace(
    LastValueQuantizer=LastValueQuantizer,
    MovingAverageQuantizer=MovingAverageQuantizer,
    Quantizer=Quantizer,
)
default_8bit = types.SimpleNamespace(
    Default8BitQuantizeScheme=Default8BitQuantizeScheme,
    Default8BitQuantizeConfig=Default8BitQuantizeConfig,
)

__all__ = [
    "Default8BitQuantizeConfig",
    "Default8BitQuantizeScheme",
    "LastValueQuantizer",
    "MovingAverageQuantizer",
    "QuantizeAnnotate",
    "QuantizeConfig",
    "QuantizeWrapper",
    "Quantizer",
    "default_8bit",
    "quantize_annotate_layer",
    "quantize_annotate_model",
    "quantize_apply",
    "quantize_model",
    "quantize_scope",
    "quantizers",
]
