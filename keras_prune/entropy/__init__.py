"""Entropy of ReLU states, and entropy-guided pruning (EGP, Liao et al. 2023).

A ReLU unit is "on" (output > 0) or "off" for each sample. Over a dataset its
binary entropy is 0 when it is always on (it is then linear) or always off (a
constant), and 1 bit when it is on for half the samples. EGP observes that
unstructured pruning lowers these entropies, and prunes layers with low entropy
harder, until whole layers have zero entropy and can be removed exactly
(`keras_prune.structured.collapse_layers`). On residual networks,
`steer="branches"` empties the lowest-entropy residual branches instead, which
`collapse_layers` then removes (the paper's rule can empty the main path). On
plain networks without branches, `steer="linearize"` drives the lowest-entropy
layers to zero entropy by choosing *which* of their weights to prune (see
`egp_prune`), so that `collapse_layers` can fold them into the next layer.

```python
print(keras_prune.entropy.layer_entropy(model, x_train[:512]))
pruned = keras_prune.entropy.egp_prune(model, (x, y), 0.9, rounds=5, epochs=3)
small, report = keras_prune.structured.collapse_layers(
    keras_prune.strip_pruning(pruned), x_train[:512])
```
"""

from keras_prune.entropy.egp import egp_prune
from keras_prune.entropy.states import binary_entropy, layer_entropy, relu_layer, relu_states

__all__ = ["binary_entropy", "egp_prune", "layer_entropy", "relu_layer", "relu_states"]
