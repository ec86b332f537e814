"""`PruneLowMagnitude`: the layer wrapper that holds and applies pruning masks.

The wrapper owns one boolean mask (and one threshold) per prunable weight of the
layer it wraps, plus tfmot's `pruning_step`. In `call` the wrapped layer runs with
its prunable weights replaced by `weight * mask`, through a `keras.StatelessScope`,
so the same code masks the forward pass on every backend (and gradients of pruned
weights are exactly zero). Masks are recomputed outside the training graph by
`PruneCallback`, which also zeroes the stored weights, so what is saved is exact.

Masks are booleans, one byte per weight (float masks doubled the memory of every
pruned weight). Keeping weights masked with a variable constraint after each
optimizer update instead of multiplying in the forward pass was measured and was
not faster (benchmarks/README.md).
"""

import contextlib

import keras
from keras import ops

from keras_prune import _validation
from keras_prune._models import flatten_layers
from keras_prune._models.calls import adopt_call_signature, own_variables
from keras_prune.errors import NotALayerError, UnsupportedLayerError
from keras_prune.layers import registry
from keras_prune.masking.block import POOLING_TYPES, check_block_fits
from keras_prune.masking.m_by_n import check_m_by_n
from keras_prune.schedules import ConstantSparsity, PruningSchedule


def check_schedule(pruning_schedule):
    if pruning_schedule is None:
        return ConstantSparsity(0.5, begin_step=0)
    if isinstance(pruning_schedule, dict):
        pruning_schedule = keras.saving.deserialize_keras_object(pruning_schedule)
    if not isinstance(pruning_schedule, PruningSchedule):
        raise TypeError(
            "Argument `pruning_schedule` must be a keras_prune.schedules.PruningSchedule "
            "(e.g. PolynomialDecay or ConstantSparsity, or your own subclass). "
            f"Received: pruning_schedule={pruning_schedule!r} of type "
            f"{type(pruning_schedule).__name__}."
        )
    return pruning_schedule


@contextlib.contextmanager
def _laid_out_like(weight):
    """Under a `keras.distribution` (JAX), variables created inside get `weight`'s layout.

    A mask sharded like its kernel (e.g. by a ModelParallel LayoutMap that names only
    the kernel) is updated shard by shard, without gathering either to one device.
    """
    distribution = keras.distribution.distribution()
    layout = getattr(weight, "_layout", None)
    if distribution is None or layout is None:
        yield
        return
    distribution.get_variable_layout = lambda variable: layout  # shadows the method
    try:
        yield
    finally:
        del distribution.get_variable_layout


@keras.saving.register_keras_serializable(package="keras_prune")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Wraps a layer so that its prunable weights are masked by magnitude.

    You rarely build this directly: `keras_prune.prune_low_magnitude` wraps the
    supported layers of a model for you. Train with `PruneCallback`.

    Example:

    ```python
    layer = PruneLowMagnitude(keras.layers.Dense(10),
                              pruning_schedule=ConstantSparsity(0.8, 0))
    ```

    Args:
        layer: The Keras layer to prune (see `keras_prune.layers.supported_layer_names`).
        pruning_schedule: A `PruningSchedule`; defaults to a fresh
            `ConstantSparsity(0.5, begin_step=0)`.
        block_size: (rows, cols) of the blocks pruned together in rank-2 weights.
            Defaults to (1, 1), element-wise pruning.
        block_pooling_type: "AVG" or "MAX", how a block's magnitude is pooled.
        sparsity_m_by_n: None, or (m, n): m zeros in every n consecutive input
            channels (e.g. (2, 4)). The schedule then only decides when to prune.
        pruning_group: None, or a name shared by wrappers pruned with one global
            magnitude threshold (see `prune_low_magnitude(global_pruning=True)`).
        **kwargs: Base layer arguments (e.g. `name`).
    """

    def __init__(
        self,
        layer,
        pruning_schedule=None,
        block_size=(1, 1),
        block_pooling_type="AVG",
        sparsity_m_by_n=None,
        pruning_group=None,
        **kwargs,
    ):
        if isinstance(layer, PruneLowMagnitude):
            raise ValueError(
                f"Layer `{layer.name}` is already wrapped for pruning. Pass the original "
                "layer, or call keras_prune.strip_pruning() first to start over."
            )
        if not isinstance(layer, keras.layers.Layer):
            raise NotALayerError(
                "Argument `layer` must be a Keras 3 layer. "
                f"Received: layer={layer!r} of type {type(layer).__name__}."
            )
        if not registry.is_prunable(layer):
            raise UnsupportedLayerError(registry.unsupported_layer_message(layer))
        self.pruning_schedule = check_schedule(pruning_schedule)
        self.block_size = _validation.check_int_pair("block_size", block_size)
        if block_pooling_type not in POOLING_TYPES:
            raise ValueError(
                f"Argument `block_pooling_type` must be one of {POOLING_TYPES}. "
                f"Received: block_pooling_type={block_pooling_type!r}."
            )
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = (
            None if sparsity_m_by_n is None else check_m_by_n(sparsity_m_by_n)
        )
        if self.sparsity_m_by_n is not None and self.block_size != (1, 1):
            raise ValueError(
                "Arguments `sparsity_m_by_n` and `block_size` cannot be combined. "
                f"Received: sparsity_m_by_n={self.sparsity_m_by_n}, block_size={self.block_size}."
            )
        self.pruning_group = pruning_group
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        if not callable(getattr(layer, "get_prunable_weights", None)):
            # tfmot's wrapper gives every layer it wraps this method ([] for Dropout & co.);
            # ported code calls `wrapper.layer.get_prunable_weights()`.
            object.__setattr__(layer, "get_prunable_weights",
                               lambda: registry.get_prunable_weights(layer))
        self.supports_masking = layer.supports_masking
        adopt_call_signature(self, layer)
        # Set by PruneCallback for the duration of a fit (or a custom loop). Once a
        # run has ended, training-mode calls (BatchNorm re-estimation) are allowed.
        self.pruning_active = False
        self._trained = False

    def __getattr__(self, name):
        """Public attributes the wrapper lacks are read from the wrapped layer: a custom
        block that reads e.g. `self.attention.use_causal_mask` keeps working."""
        parent = getattr(super(), "__getattr__", None)  # torch.nn.Module's, under torch
        if parent is not None:
            try:
                return parent(name)
            except AttributeError:
                pass
        if name.startswith("_"):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        inner = self.__dict__.get("layer") or (self.__dict__.get("_modules") or {}).get("layer")
        if inner is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        return getattr(inner, name)

    def set_pruning_active(self, active):
        """Marks a PruneCallback run (fit or custom loop) as started or ended.

        Training-mode calls are refused outside a run until one has ended; after
        that (e.g. BatchNorm re-estimation with `model(x, training=True)`) they run.
        """
        self.pruning_active = bool(active)
        if not active:
            self._trained = True

    # Building ---------------------------------------------------------------

    def build(self, input_shape=None):
        if not self.layer.built:
            try:
                self.layer.build(input_shape)
            except TypeError as error:
                raise ValueError(
                    f"Layer `{self.layer.name}` ({type(self.layer).__name__}) could not be "
                    f"built from input shape {input_shape}: {error}. Build it (call it on its "
                    "inputs once) before wrapping it, or prune the whole built model."
                ) from None
        # Empty for layers with nothing to prune (Dropout, pooling...): a no-op wrapper.
        # A plain attribute: Keras would track a list of variables as the wrapper's own,
        # and save every pruned weight twice in a .keras file.
        object.__setattr__(self, "_prunable", tuple(registry.get_prunable_weights(self.layer)))
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            dtype="int32",
            initializer=keras.initializers.Constant(-1),
            trainable=False,
            aggregation="only_first_replica",
        )
        # The optimizer's iteration count when `pruning_step` was last written: lets a
        # checkpoint taken mid-epoch resume at the exact step (see PruneCallback).
        self.synced_iteration = self.add_weight(
            name="synced_iteration",
            shape=(),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
        )
        self.masks, self.thresholds = [], []
        for weight in self._prunable:
            short_name = weight.path.split("/")[-1]
            check_block_fits(self.block_size, weight.shape, weight.path)
            with _laid_out_like(weight):
                mask = self.add_weight(
                    name=f"{short_name}_mask",
                    shape=weight.shape,
                    dtype="bool",  # a byte per weight (a float mask doubled the memory)
                    initializer="ones",
                    trainable=False,
                    aggregation="only_first_replica",
                )
            self.masks.append(mask)
            self.thresholds.append(
                self.add_weight(
                    name=f"{short_name}_threshold",
                    shape=(),
                    dtype=weight.dtype,
                    initializer="zeros",
                    trainable=False,
                    aggregation="only_first_replica",
                )
            )
        self._track_for_tf_checkpoints()
        self.built = True

    def _track_for_tf_checkpoints(self):
        """Names the masks and thresholds as dependencies for `tf.train.Checkpoint`.

        A TF checkpoint follows attributes, and Keras keeps lists of variables in
        lists it does not hand to TF: without this, a checkpoint would restore the
        weights but not the masks (custom loops, multi-worker training).
        """
        track = getattr(self, "_track_trackable", None)  # TF backend only
        if track is None:
            return
        for index, (mask, threshold) in enumerate(zip(self.masks, self.thresholds)):
            track(mask, name=f"mask_{index}", overwrite=True)
            track(threshold, name=f"threshold_{index}", overwrite=True)

    def load_own_variables(self, store):
        own = own_variables(self)
        if len(store.keys()) == len(own) + len(self._prunable):
            # Files written before masks were boolean also stored the pruned weights here,
            # first (the wrapped layer loads its own copy from its entry).
            skip = len(self._prunable)
            store = {str(i - skip): store[str(i)] for i in range(skip, len(store.keys()))}
        super().load_own_variables(store)

    @property
    def prunable_weights(self):
        """The wrapped layer's variables that are masked, in mask order ([] until built)."""
        return list(getattr(self, "_prunable", []))

    # Forward pass -----------------------------------------------------------

    def call(self, *args, training=None, **kwargs):
        # Arguments are forwarded as given (positional or keyword, Keras masks
        # included), so graph nodes replay unchanged on the bare layer (strip_pruning).
        if training is True and self._prunable and not (self.pruning_active or self._trained):
            raise ValueError(
                f"Layer `{self.name}` is being trained without keras_prune's callback, so its "
                "pruning masks would never be updated. Add it to fit: "
                "`model.fit(..., callbacks=[keras_prune.callbacks.PruneCallback()])`. "
                "In a custom training loop, call the callback's on_train_begin() and "
                "on_train_batch_begin(step) yourself (see the docs)."
            )
        if self._inner_takes_training:
            kwargs["training"] = training

        # Read every inner variable through the enclosing scope (if any), then run the
        # layer in a scope where the prunable ones are replaced by weight * mask.
        masked = {id(w): m for w, m in zip(self._prunable, self.masks)}
        mapping = []
        for variable in self.layer.variables:
            value = variable.value
            if id(variable) in masked:
                value = value * ops.cast(masked[id(variable)].value, value.dtype)
            mapping.append((variable, value))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            before = [scope.get_current_value(v) for v, _ in mapping]
            outputs = self.layer(*args, **kwargs)
        # Propagate assignments the layer made in call (e.g. RNG seed state).
        for (variable, _), old in zip(mapping, before):
            new = scope.get_current_value(variable)
            if new is not old:
                variable.assign(new)
        return outputs

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    # Serialization ------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pruning_schedule": keras.saving.serialize_keras_object(self.pruning_schedule),
                "block_size": list(self.block_size),
                "block_pooling_type": self.block_pooling_type,
                "sparsity_m_by_n": (
                    None if self.sparsity_m_by_n is None else list(self.sparsity_m_by_n)
                ),
                "pruning_group": self.pruning_group,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        schedule = config.pop("pruning_schedule", None)
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(
                schedule, custom_objects=custom_objects
            )
        return cls(layer, pruning_schedule=schedule, **config)


def collect_wrappers(model):
    """Every `PruneLowMagnitude` reachable from `model`, including nested models."""
    return [layer for layer in flatten_layers(model, include_self=True) if isinstance(layer, PruneLowMagnitude)]
