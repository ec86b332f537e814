"""A keras_hub model seen as config fields, blocks and variables.

keras_hub backbones hold one width per kind for all their blocks (`num_heads`,
`intermediate_dim`, `hidden_dim`, `num_layers`), so a model pruned by the same
amount in every block is the same class built from a smaller config. `HubModel`
finds those fields, the list of blocks, and rebuilds the backbone (and the Task
around it) from an edited config, with no weights loaded yet.
"""

import dataclasses

import keras

HEADS_FIELDS = ("num_query_heads", "num_heads", "num_attention_heads")
KV_FIELD = "num_key_value_heads"
# A config integer whose name ends so is a feed-forward width (`intermediate_dim`,
# `moe_intermediate_dim`, `decoder_ffn_dim`, ...); each is probed on its own.
UNITS_FIELDS = ("intermediate_dim", "mlp_dim", "ffn_dim", "feedforward_dim",
                "intermediate_size", "feedforward_expansion_factor")
_RATIO_FIELDS = ("mlp_ratio",)  # Swin: units = mlp_ratio * the stage's width
HIDDEN_FIELD = "hidden_dim"
HEAD_DIM_FIELD = "head_dim"
DEPTH_FIELD = "num_layers"
EXPERTS_FIELD = "num_experts"
TOP_K_FIELD = "top_k"
# Attributes that keras_hub backbones (or a layer inside them) keep their repeated
# blocks in; an encoder-decoder model has two, encoder first.
BLOCK_LISTS = ("transformer_layers", "encoder_layers", "encoder_transformer_layers",
                "encoder_blocks", "decoder_layers", "decoder_transformer_layers",
                "decoder_blocks", "rwkv_layers")
# inside a layer: DINOv2/v3 `backbone.get_layer("encoder").layers`, Swin's stage `.blocks`
_NESTED_BLOCK_LISTS = ("layers", "blocks")


def hub_classes():
    """(Backbone, Task) classes of keras_hub, or (None, None) when it is not installed."""
    try:
        import keras_hub
    except ImportError:
        return None, None
    return keras_hub.models.Backbone, keras_hub.models.Task


def is_hub_model(model):
    backbone_cls, task_cls = hub_classes()
    return backbone_cls is not None and isinstance(model, (backbone_cls, task_cls))


def _stack_fields(config, names):
    """(field, *twins): the config's first field among `names`, or, where each stack
    holds its own (`encoder_num_attention_heads`, `decoder_num_attention_heads`), those
    fields when their values are equal; (None,) without one."""
    exact = next((f for f in names if isinstance(config.get(f), int)), None)
    if exact is not None:
        return (exact,)
    suffixes = tuple("_" + name for name in names)
    stacks = [f for f, v in config.items() if isinstance(v, int) and not isinstance(v, bool)
              and f.endswith(suffixes) and not (names != (KV_FIELD,) and "key_value" in f)]
    if stacks and len({config[f] for f in stacks}) == 1:
        return tuple(stacks)
    return (None,)


def is_task(model):
    """True for a keras_hub Task (a backbone with its head), False for anything else."""
    return hub_classes()[1] is not None and isinstance(model, hub_classes()[1])


@dataclasses.dataclass
class HubModel:
    """A keras_hub Backbone, or a Task and its backbone, with its prunable fields."""

    model: object  # what the user passed: a Backbone or a Task
    backbone: object
    config: dict  # the backbone's config
    heads: str | None  # config field of the (query) head count
    kv_heads: str | None
    units: str | None
    blocks: list  # the transformer blocks, in order

    @classmethod
    def of(cls, model, tower=False):
        """`tower=True` takes any keras.Model with a config (a sub-model of a backbone)."""
        backbone_cls, task_cls = hub_classes()
        if isinstance(model, task_cls):
            backbone = model.backbone
        elif isinstance(model, backbone_cls) or tower:
            backbone = model
        else:
            raise TypeError(f"Expected a keras_hub Backbone or Task. Received: {type(model)}.")
        config = backbone.get_config()
        return cls(
            model=model,
            backbone=backbone,
            config=config,
            heads=_stack_fields(config, HEADS_FIELDS)[0],
            kv_heads=_stack_fields(config, (KV_FIELD,))[0],
            units=next((f for f in UNITS_FIELDS if f in config), None),
            blocks=find_blocks(backbone),
        )

    @property
    def units_fields(self):
        """Every feed-forward width of the config (a mixture of experts has the experts'
        own, and a shared expert's, beside the dense one)."""
        fields = [f for f, v in self.config.items()
                  if (f.endswith(UNITS_FIELDS) and isinstance(v, int) and not isinstance(v, bool)
                      and v > 0) or (f.endswith(_RATIO_FIELDS) and isinstance(v, float) and v > 0)]
        return sorted(fields, key=lambda f: (f not in UNITS_FIELDS, UNITS_FIELDS.index(f)
                                             if f in UNITS_FIELDS else 0))

    @property
    def towers(self):
        """[(config field, sub-model)]: the backbone's models of their own, each built
        from its own config (CLIP's vision and text encoders, SAM's image encoder)."""
        found = []
        for field, value in self.config.items():
            layer = getattr(self.backbone, field, None)
            if (isinstance(value, dict) and "config" in value and isinstance(layer, keras.Model)
                    and hasattr(layer, "get_config")):
                found.append((field, layer))
        return found

    @property
    def is_task(self):
        return self.model is not self.backbone

    @property
    def name(self):
        return type(self.model).__name__

    @property
    def num_heads(self):
        return self.config[self.heads] if self.heads else None

    @property
    def num_kv_heads(self):
        return self.config[self.kv_heads] if self.kv_heads else self.num_heads

    @property
    def key_values_go(self):
        """True when key/value heads are removed with their query heads (GQA, or a config
        with as many key/value heads as query heads); False for MHA configs without a
        key/value count and for MQA's single shared key/value head."""
        return bool(self.kv_heads) and self.num_kv_heads > 1

    @property
    def head_groups(self):
        """How many units heads go in: key/value groups when they go, else the heads."""
        return self.num_kv_heads if self.key_values_go else self.num_heads

    @property
    def heads_per_group(self):
        return self.num_heads // self.head_groups

    @property
    def head_twins(self):
        """The other stacks' head count fields (T5Gemma's decoder's)."""
        return _stack_fields(self.config, HEADS_FIELDS)[1:] if self.heads else ()

    @property
    def kv_twins(self):
        """The other stacks' key/value head fields (T5Gemma's decoder's)."""
        return _stack_fields(self.config, (KV_FIELD,))[1:] if self.kv_heads else ()

    @property
    def head_dim_fields(self):
        """The config fields that can hold the head width: `head_dim` (Mistral's may be
        None, derived until set), or one per stack."""
        if HEAD_DIM_FIELD in self.config:
            return (HEAD_DIM_FIELD,)
        fields = _stack_fields(self.config, (HEAD_DIM_FIELD,))
        return () if fields[0] is None else fields

    @property
    def head_dim(self):
        """The head width: the config's own, or hidden_dim // heads where it is derived."""
        if self.head_dim_fields and self.config[self.head_dim_fields[0]]:
            return self.config[self.head_dim_fields[0]]
        if self.heads and self.config.get(HIDDEN_FIELD):
            return self.config[HIDDEN_FIELD] // self.num_heads
        return None

    @property
    def head_dim_is_free(self):
        """True when the config can say how wide a head is (Gemma, Mistral)."""
        return bool(self.head_dim_fields)

    def build(self, changes, keep_preprocessor=False):
        """A new model from the edited config: a Backbone, or a Task with no preprocessor
        (probes, copies) or, with `keep_preprocessor`, the Task's own (the result)."""
        config = {**self.config, **changes}
        preprocessor = getattr(self.model, "preprocessor", None) if keep_preprocessor else None
        backbone = type(self.backbone).from_config(config)
        if not self.is_task:
            return backbone
        task_config = self.model.get_config()
        task_config["backbone"] = backbone
        task_config["preprocessor"] = preprocessor
        return type(self.model).from_config(task_config)

    def block_of(self):
        """{id(variable): block index} for every variable of every block."""
        owner = {}
        for index, block in enumerate(self.blocks):
            for variable in block.weights:
                owner[id(variable)] = index
        return owner


def _stacks(backbone):
    """[(attribute, blocks)] for every list of blocks of the backbone, in call order."""
    found, seen = [], set()
    for holder in [backbone] + list(backbone.layers):
        names = list(BLOCK_LISTS)
        if not isinstance(holder, keras.Model):  # a Model's `.layers` is every layer
            names += _NESTED_BLOCK_LISTS
        for attribute in names:
            blocks = vars(holder).get(attribute)
            if isinstance(blocks, (list, tuple)) and blocks and all(
                    isinstance(group, (list, tuple)) for group in blocks):
                blocks = [block for group in blocks for block in group]  # ALBERT's groups
            if (isinstance(blocks, (list, tuple)) and blocks
                    and all(isinstance(b, keras.layers.Layer) for b in blocks)
                    and not seen & {id(b) for b in blocks}):
                found.append((attribute, list(blocks)))
                seen |= {id(b) for b in blocks}
    return sorted(found, key=lambda item: "decoder" in item[0])


def block_stacks(backbone):
    """Names of the backbone's lists of blocks (two for an encoder-decoder model)."""
    return [attribute for attribute, _ in _stacks(backbone)]


def find_blocks(backbone):
    """The backbone's repeated blocks, from keras_hub's own lists: every stack's, the
    encoder's before the decoder's; or, for a backbone that keeps no list (ViTDet), its
    `num_layers` top-level layers of one class that hold weights."""
    blocks = [block for _, blocks in _stacks(backbone) for block in blocks]
    return blocks or _repeated_layers(backbone)


def _repeated_layers(backbone):
    depth = backbone.get_config().get(DEPTH_FIELD) if hasattr(backbone, "get_config") else None
    if not isinstance(depth, int) or depth < 1:
        return []
    by_class = {}
    for layer in backbone.layers:
        if layer.weights and not isinstance(layer, keras.Model):
            by_class.setdefault(type(layer), []).append(layer)
    found = [layers for layers in by_class.values() if len(layers) == depth]
    return found[0] if len(found) == 1 else []
