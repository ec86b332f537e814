"""Structured pruning of keras_hub models made of towers: CLIP's and SigLIP's vision
and text encoders, SAM's and DepthAnything's image encoders, ...

Each tower is a model built from its own config, nested in the backbone's config.
Every tower is pruned on its own (`TransformerPruner`: heads and feed-forward units,
the same in each of its blocks), and the backbone is built again from its config
with the smaller towers' configs, so it keeps its class; the layers outside the
towers (projections, heads) keep their weights, as the towers' output widths do not
change.
"""

import keras
import numpy as np

from keras_prune._views.hub import HubModel
from keras_prune.structured.hub import axes
from keras_prune.structured.hub.pruner import TransformerPruner
from keras_prune.structured.results import LayerWidth, StructuredReport


def has_towers(model):
    """True for a keras_hub model with a transformer tower (blocks or a feed-forward
    width in the tower's config)."""
    for _, tower in HubModel.of(model).towers:
        view = HubModel.of(tower, tower=True)
        if view.blocks or view.units_fields:
            return True
    return False


class TowerPruner:
    """Prunes every transformer tower of a keras_hub model; the model keeps its class.

    Args:
        model: a keras_hub Backbone with towers, or a Task on one.
        heads, units, experts: fractions to remove from every block of every tower, or
            dicts {tower: fraction} (tower: the backbone's config field, such as
            "vision_encoder"; a tower left out keeps that kind).
        round_to: as for `TransformerPruner`.
    """

    def __init__(self, model, heads=0.5, units=0.5, experts=0.0, *, round_to=None):
        self.hub = HubModel.of(model)
        names = [field for field, _ in self.hub.towers]
        self.notes, self.pruners = [], {}
        for field, tower in self.hub.towers:
            options = {kind: _for_tower(kind, value, field, names)
                       for kind, value in (("heads", heads), ("units", units),
                                           ("experts", experts))}
            if not any(options.values()):
                continue
            try:
                pruner = TransformerPruner(HubModel.of(tower, tower=True), round_to=round_to,
                                           **options)
                pruner.plan()
            except (NotImplementedError, axes.ProbeError, KeyError) as error:
                self.notes.append(f"{field} kept: {_first_line(error)}")
                continue
            if pruner.keep:
                self.pruners[field] = pruner
            self.notes += [f"{field}: {note}" for note in pruner.notes]

    def apply(self):
        """Builds the smaller model. Returns (new_model, report)."""
        hub, smaller, rows = self.hub, {}, []
        for field, pruner in self.pruners.items():
            smaller[field], report = pruner.apply()
            rows += [LayerWidth(f"{field}/{row.layer}", row.kind, row.before, row.after)
                     for row in report.layers]
        changes = {field: keras.layers.serialize(tower) for field, tower in smaller.items()}
        new_model = hub.build(changes, keep_preprocessor=True)
        new_backbone = getattr(new_model, "backbone", new_model)
        for field, tower in smaller.items():
            _copy(tower.weights, getattr(new_backbone, field).weights, hub.name)
        _copy(_outside(hub.model, self.pruners), _outside(new_model, smaller), hub.name)
        report = StructuredReport(
            layers=rows, params_before=hub.model.count_params(),
            params_after=new_model.count_params(), flops_before=None, flops_after=None,
            frozen=[], notes=list(self.notes))
        return new_model, report

    def masked_copy(self):
        """A same-size copy with every removed head and unit of every tower zeroed."""
        copy = self.hub.build({})
        _copy(self.hub.model.weights, copy.weights, self.hub.name)
        backbone = getattr(copy, "backbone", copy)
        for field, pruner in self.pruners.items():
            axes.zero_removed(pruner.hub, pruner.labels, pruner.keep, getattr(backbone, field))
        return copy


def _outside(model, towers):
    """The model's weights that belong to none of the named towers, in order."""
    backbone = getattr(model, "backbone", model)
    inside = {id(v) for field in towers for v in getattr(backbone, field).weights}
    return [v for v in model.weights if id(v) not in inside]


def _copy(sources, targets, name):
    if len(sources) != len(targets):
        raise ValueError(f"Internal error: {len(sources)} weights for {len(targets)} in the "
                         f"rebuilt {name}.")
    for source, target in zip(sources, targets):
        if tuple(source.shape) != tuple(target.shape):
            raise ValueError(f"Internal error: `{source.path}` {tuple(source.shape)} does not "
                             f"fit `{target.path}` {tuple(target.shape)} in the rebuilt {name}.")
        target.assign(np.array(keras.ops.convert_to_numpy(source)))  # a copy: JAX may donate


def _for_tower(kind, value, tower, towers):
    if not isinstance(value, dict):
        return value
    unknown = sorted(set(value) - set(towers))
    if unknown:
        raise ValueError(f"Argument `{kind}` names {unknown}, which are not towers of this "
                         f"model. Towers: {towers}. Received: {kind}={value!r}.")
    return value.get(tower, 0.0)


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
