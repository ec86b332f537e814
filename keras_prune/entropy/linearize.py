"""steer="linearize" of `egp_prune`: pruning chosen ReLU layers until they are linear."""

import contextlib
import math

import keras
import numpy as np
from keras import ops

from keras_prune.entropy.states import binary_entropy, output_relus

# The least bias a kept unit of a linearized layer holds during the repair fine-tuning.
BIAS_FLOOR = 1e-4


class _KeepOn(keras.constraints.Constraint):
    """Keeps the entries of `on` units at >= `floor` after each optimizer update."""

    def __init__(self, on, floor):
        self.on, self.floor = on, floor

    def __call__(self, w):
        w = ops.convert_to_tensor(w)  # the optimizer passes the variable itself
        return ops.where(self.on, ops.maximum(w, self.floor), w)


class Linearizer:
    """steer="linearize": prunes chosen ReLU layers until they are linear.

    A chosen layer's units take a role from how often they were on when it was
    chosen: "on" (at least half the samples) or "off". Pruning then removes what
    lets a unit leave its role: an on-unit's negative incoming weights (its inputs
    are ReLU outputs, never negative, so the kept ones can only push it up) and
    every weight of an off-unit (it becomes the constant relu(bias)). The repair
    fine-tuning keeps an on-unit's weights >= 0 and its bias >= BIAS_FLOOR, so the unit
    is on for every input: the layer is linear exactly, not only on the data.
    """

    def __init__(self, model, entries, count):
        from keras_prune.structured.collapse import linearizable_layers

        self.entries = {e.layer_name: e for e in entries}
        self.candidates = [n for n in linearizable_layers(model) if n in self.entries]
        # Layer name -> the name its ReLU states go by (its own, or its ReLU layer's).
        relus = output_relus(model)
        self.state_keys = {name: relus[name] for name in self.candidates}
        if count > len(self.candidates):
            raise ValueError(
                f"Argument `linearize` ({count}) exceeds the {len(self.candidates)} layer(s) "
                "of this model that can be made linear: a Dense or convolution with a bias "
                "and a ReLU (its activation, or a ReLU layer right after it), whose input "
                "is another ReLU's output and whose output feeds only a Dense (or a 1x1 "
                "convolution). Candidates: "
                f"{self.candidates or 'none'}."
            )
        self.count = count
        self.roles = {}  # layer name -> boolean vector, True for the units kept on

    def choose(self, states, rounds_left):
        """Adds the lowest-entropy candidates, spreading the choices over the rounds left."""
        wanted = math.ceil((self.count - len(self.roles)) / max(rounds_left, 1))
        key = self.state_keys
        free = [n for n in self.candidates if n not in self.roles and key[n] in states]
        free.sort(key=lambda n: float(np.mean(binary_entropy(states[key[n]]))))
        for name in free[:wanted]:
            self.roles[name] = np.asarray(states[key[name]]) >= 0.5

    def restrict(self, masks, index):
        """Prunes, in `masks`, the weights that let a chosen unit leave its role."""
        for name, on in self.roles.items():
            i = index[name]
            weight = ops.convert_to_numpy(self.entries[name].weight)
            masks[i] &= (weight > 0) & on.reshape((1,) * (weight.ndim - 1) + (-1,))

    @contextlib.contextmanager
    def constrained(self):
        """Clamps on-units' kernels (>= 0) and biases (>= BIAS_FLOOR), also during training."""
        saved = []
        for name, on in self.roles.items():
            layer = self.entries[name].wrapper.layer
            for variable, floor in ((layer.kernel, 0.0), (layer.bias, BIAS_FLOOR)):
                shape = (1,) * (len(variable.shape) - 1) + (-1,)
                constraint = _KeepOn(ops.convert_to_tensor(on.reshape(shape)), floor)
                saved.append((variable, variable.constraint))
                variable.constraint = constraint
                variable.assign(constraint(variable))
        try:
            yield
        finally:
            for variable, constraint in saved:
                variable.constraint = constraint
