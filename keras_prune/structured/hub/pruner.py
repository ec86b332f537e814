"""Structured pruning of keras_hub transformers: heads, feed-forward units, residual width.

The same number of heads and units goes from every block (Minitron-style), so the
result is the same keras_hub class built from a smaller config (a
`GPT2Backbone(intermediate_dim=128, ...)`), with the surviving weights; a Task
stays that Task, with its preprocessor, so `generate()` and string inputs work and
the `.keras` file reloads as that class.
"""

import math

import keras
import numpy as np

from keras_prune._validation import check_fraction, check_int
from keras_prune._views.hub import (
    BLOCK_LISTS,
    EXPERTS_FIELD,
    HEADS_FIELDS,
    HIDDEN_FIELD,
    TOP_K_FIELD,
    HubModel,
)
from keras_prune.structured.hub import axes, scores
from keras_prune.structured.hub import reconstruct as refitting
from keras_prune.structured.results import LayerWidth, StructuredReport

_IMPORTANCE = ("l1", "activation")


class TransformerPruner:
    """Plans which heads, units and channels go from a keras_hub model, then builds it.

    Args:
        model: a keras_hub Backbone or Task (e.g. `GPT2CausalLM`), built.
        heads: fraction of attention heads to remove from every block. With grouped
            key/value heads (GQA, MQA) whole key/value groups go with their query
            heads; with a single key/value head, query heads go.
        units: fraction of feed-forward units to remove from every block (the gated
            pair of Gemma/Llama with the down projection's inputs).
        hidden: fraction of the residual width (`hidden_dim`) to remove: embeddings,
            norms, every projection that reads or writes the residual stream.
        importance: "l1" (weights) or "activation" (calibration `data`).
        data: calibration inputs: what the model takes (token-id dicts, images), a
            `tf.data.Dataset` of batches, or strings for a Task with a preprocessor.
        round_to: keep counts of units and channels multiples of this.
        reconstruct: calibration data (as `data`) to re-fit, by least squares, the
            layers that read the removed heads and units (the attention output and
            down projections, biases included), so the smaller model computes what the
            original computed as closely as the kept channels allow; no training.
        experts: fraction of a mixture of experts' experts to remove from every block
            (`num_experts` shrinks), ranked by the share of the router's probability
            they receive on `data` (by their weights' magnitude without data); `top_k`
            is lowered to the experts left if it would exceed them. The router then
            chooses among fewer experts, so this changes what the model computes more
            than removing units does: fine-tune or distill afterwards.
    """

    def __init__(self, model, heads=0.5, units=0.5, hidden=0.0, importance="l1", *, data=None,
                 round_to=None, reconstruct=None, experts=0.0):
        self.hub = model if isinstance(model, HubModel) else HubModel.of(model)
        if not self.hub.blocks and (self.hub.units or self.hub.heads):
            raise NotImplementedError(
                f"{self.hub.name} has head or feed-forward fields in its config but no list "
                f"of blocks keras_prune knows ({', '.join(BLOCK_LISTS)}), so its blocks "
                "cannot be pruned structurally yet. Prune it "
                "unstructured (prune_low_magnitude) or one-shot (prune_one_shot) instead."
            )
        self.heads = check_fraction("heads", heads, hint=_HINT)
        self.units = check_fraction("units", units, hint=_HINT)
        self.hidden = check_fraction("hidden", hidden, hint=_HINT)
        self.experts = check_fraction("experts", experts, hint=_HINT)
        if importance not in _IMPORTANCE:
            raise ValueError(
                f"Argument `importance` must be one of {_IMPORTANCE} for a keras_hub model. "
                f"Received: importance={importance!r}."
            )
        if importance == "activation" and data is None:
            raise ValueError(
                "importance='activation' measures the model on calibration batches, so it "
                "needs `data` (e.g. token-id dicts, or strings for a Task with a preprocessor)."
            )
        self.importance = importance
        self.data = data
        self.round_to = None if round_to is None else check_int("round_to", round_to, minimum=1)
        self.reconstruct = reconstruct
        self.notes = []
        self.keep = None
        self._targets = self._plan_widths()

    # -- widths -------------------------------------------------------------------

    def _kept(self, size, ratio, multiple=1):
        keep = size - int(size * ratio + 1e-9)
        step = multiple * (self.round_to or 1) if ratio else multiple
        keep = math.ceil(keep / step) * step if step > 1 else keep
        return min(size, max(keep, multiple))

    def _plan_widths(self):
        """{kind: (config changes, kept count)} for each kind that shrinks."""
        hub, config, targets = self.hub, self.hub.config, {}
        if self.units:
            if not hub.units_fields:
                self.notes.append(f"units kept: {hub.name}'s config has no feed-forward width")
            else:
                targets[axes.UNITS] = None  # the counts are read off the probes
        self._joint = False  # heads and residual width cut together (tied head width)
        if self.heads:
            listed = next((f for f in HEADS_FIELDS if isinstance(hub.config.get(f), list)), None)
            if hub.heads is None and listed:
                self.notes.append(f"heads kept: {hub.name}'s config holds a head count per "
                                  f"stage (`{listed}`), which keras_prune does not prune yet")
            elif hub.heads is None:
                self.notes.append(f"heads kept: {hub.name}'s config has no head count")
            elif hub.head_dim is None:
                self.notes.append(f"heads kept: {hub.name}'s config has no `{HIDDEN_FIELD}` "
                                  "to derive each head's width from")
            elif not hub.head_dim_is_free and not math.isclose(self.heads, self.hidden):
                self.notes.append(
                    f"heads kept: {type(hub.backbone).__name__} derives each head's width from "
                    f"hidden_dim / {hub.heads}, so fewer heads of the same width need a "
                    "narrower residual stream too: pass hidden equal to heads (e.g. heads=0.5, "
                    "hidden=0.5) to remove whole heads with their share of the width"
                )
            else:
                kept_groups = self._kept(hub.head_groups, self.heads)
                if kept_groups < hub.head_groups:
                    targets[axes.HEADS] = kept_groups
                    if not hub.head_dim_is_free:
                        self._joint = True
                        targets[axes.HIDDEN] = kept_groups * hub.heads_per_group * hub.head_dim
        if self.experts:
            total = config.get(EXPERTS_FIELD)
            if not isinstance(total, int) or total < 2:
                self.notes.append(f"experts kept: {hub.name} is not a mixture of experts "
                                  f"(no `{EXPERTS_FIELD}` above 1 in its config)")
            elif self._kept(total, self.experts) < total:
                targets[axes.EXPERTS] = self._kept(total, self.experts)
        if self.hidden and not self._joint and HIDDEN_FIELD not in config:
            self.notes.append(f"hidden kept: {hub.name}'s config has no `{HIDDEN_FIELD}`")
        elif self.hidden and not self._joint:
            multiple = 1 if hub.head_dim_is_free or not hub.heads else hub.num_heads
            kept = self._kept(config[HIDDEN_FIELD], self.hidden, multiple)
            if kept < config[HIDDEN_FIELD]:
                targets[axes.HIDDEN] = kept
        return targets

    def _probes(self):
        hub, config, probes = self.hub, self.hub.config, {}
        pinned = dict.fromkeys(hub.head_dim_fields, hub.head_dim)
        if axes.UNITS in self._targets:
            for field in hub.units_fields:
                value = config[field]
                if isinstance(value, float):  # a ratio: half of it
                    probes[f"units ({field})"] = ({field: value / 2}, self._units_kind(field))
                elif value > 1:
                    probes[f"units ({field})"] = ({field: value - value // 2},
                                                  self._units_kind(field))
        if axes.HEADS in self._targets:
            kept = self._targets[axes.HEADS]
            if hub.key_values_go:
                changes = {**dict.fromkeys((hub.heads, *hub.head_twins),
                                           kept * hub.heads_per_group),
                           **dict.fromkeys((hub.kv_heads, *hub.kv_twins), kept)}
                kinds = {hub.num_heads: axes.HEADS}
                if hub.heads_per_group > 1:  # as many as the queries: they share one choice
                    kinds[hub.num_kv_heads] = axes.KV_HEADS
            else:
                changes = dict.fromkeys((hub.heads, *hub.head_twins), kept)
                kinds = {hub.num_heads: axes.HEADS}
            if self._joint:  # the head width stays: the stream narrows with the heads
                changes.update(self._hidden_changes())
                kinds[config[HIDDEN_FIELD]] = axes.HIDDEN
            probes["heads"] = ({**changes, **pinned}, kinds)
        if axes.EXPERTS in self._targets:
            kept = self._targets[axes.EXPERTS]
            changes = {EXPERTS_FIELD: kept}
            top_k = config.get(TOP_K_FIELD)
            if isinstance(top_k, int) and top_k > kept:
                changes[TOP_K_FIELD] = kept
            probes["experts"] = (changes, {config[EXPERTS_FIELD]: axes.EXPERTS})
        if axes.HIDDEN in self._targets and not self._joint:
            kinds = {config[HIDDEN_FIELD]: axes.HIDDEN}
            if hub.heads and not hub.head_dim_is_free:
                kinds[hub.head_dim] = axes.HEAD_DIM  # heads get narrower with the stream
            probes["hidden"] = ({**self._hidden_changes(), **pinned}, kinds)
        return probes

    def _hidden_changes(self):
        """The new residual width, and an embedding width equal to it (Electra,
        ALBERT): narrowed together, or the family adds a projection between them."""
        kept, config = self._targets[axes.HIDDEN], self.hub.config
        changes = {HIDDEN_FIELD: kept}
        for field in _EMBEDDING_FIELDS:
            if config.get(field) == config[HIDDEN_FIELD]:
                changes[field] = kept
        return changes

    def _units_kind(self, field):
        """`units` for the config's first feed-forward width, the field's name for others."""
        return axes.UNITS if field == self.hub.units_fields[0] else field

    def _blocks_with(self, kind):
        return sorted({self.labels.blocks[i] for i, _ in self.labels.of_kind(kind)},
                      key=_block_order)

    def _label(self):
        probes = self._probes()
        self.labels = axes.label_axes(self.hub, probes) if probes else axes.Labels({}, [], {})
        return self.labels

    # -- planning -----------------------------------------------------------------

    def plan(self):
        """Scores the channels and fixes `self.keep` ({(kind, block): kept indices})."""
        if self.keep is not None:
            return self.keep
        labels = self._label()
        recorder = None
        if self.importance == "activation" and labels.axes:
            recorder = scores.ActivationRecorder(self.hub, labels).run(self.data)
        keep = {}

        def score_of(kind, block):
            measured = recorder.scores(kind, block) if recorder else None
            if measured is None:
                measured = scores.weight_scores(self.hub, labels, kind, block)
            return measured

        def top(values, count):
            return np.sort(np.argsort(-values, kind="stable")[:count])

        blocks = range(len(self.hub.blocks))
        for kind in labels.sizes:
            if axes.is_units(kind):
                for b in self._blocks_with(kind):
                    count = self._kept(labels.size_of(kind, b), self.units)
                    keep[(kind, b)] = top(score_of(kind, b), count)
        if axes.HEADS in labels.sizes:
            self._plan_heads(keep, score_of, top)
        if axes.EXPERTS in labels.sizes:
            mass = (scores.router_mass(self.hub, labels, self.data)
                    if self.data is not None else {})
            for b in self._blocks_with(axes.EXPERTS):
                measured = mass.get(b)
                keep[(axes.EXPERTS, b)] = top(measured if measured is not None else
                                              scores.weight_scores(self.hub, labels,
                                                                   axes.EXPERTS, b),
                                              self._targets[axes.EXPERTS])
        if axes.HIDDEN in labels.sizes:
            keep[(axes.HIDDEN, None)] = top(score_of(axes.HIDDEN, None), self._targets[axes.HIDDEN])
            if axes.HEAD_DIM in labels.sizes:
                head_dim = self._targets[axes.HIDDEN] // self.hub.num_heads
                for b in blocks:
                    keep[(axes.HEAD_DIM, b)] = top(score_of(axes.HEAD_DIM, b), head_dim)
        self.keep = keep
        return keep

    def _plan_heads(self, keep, score_of, top):
        hub, kept = self.hub, self._targets[axes.HEADS]
        per_group = hub.heads_per_group
        outside = [b for b in self._blocks_with(axes.HEADS) if not isinstance(b, int)]
        for b in [*range(len(hub.blocks)), *outside]:
            head_scores = score_of(axes.HEADS, b)
            if head_scores is None:
                raise axes.ProbeError(
                    f"block {hub.blocks[b].name} has no weight whose axis is its heads (its "
                    "attention kernels fold heads into one axis as wide as the residual "
                    "stream), so heads and hidden width cannot be told apart; prune units "
                    "only (heads=0, hidden=0)")
            if per_group == 1:
                keep[(axes.HEADS, b)] = top(head_scores, kept)
                continue
            group_scores = head_scores.reshape(-1, per_group).sum(axis=1)
            if self.importance == "l1":  # the key/value kernels count too
                group_scores = group_scores + scores.weight_scores(self.hub, self.labels,
                                                              axes.KV_HEADS, b)
            groups = top(group_scores, kept)
            keep[(axes.KV_HEADS, b)] = groups
            keep[(axes.HEADS, b)] = (groups[:, None] * per_group + np.arange(per_group)).reshape(-1)

    # -- building -----------------------------------------------------------------

    def changes(self):
        """The config fields of the smaller model."""
        hub, changes = self.hub, {}
        for _, (probe_changes, _) in self._probes().items():
            changes.update(probe_changes)
        for field in hub.units_fields if axes.UNITS in self._targets else ():
            kind, value = self._units_kind(field), hub.config[field]
            if kind not in self.labels.sizes:  # no weight holds it (no dense layer in an MoE)
                changes[field] = value
                continue
            new_values = set()
            for block in self._blocks_with(kind):
                kept_units = len(self.keep[(kind, block)])
                size = self.labels.size_of(kind, block)
                if isinstance(value, float):  # a ratio (Swin's `mlp_ratio`)
                    new_values.add(value * kept_units / size)
                elif (value * kept_units) % size:
                    raise ValueError(
                        f"{hub.name}'s `{field}`={value} holds {size} units per block; "
                        f"keeping {kept_units} has no whole-number `{field}`. Use round_to=2.")
                else:
                    new_values.add(value * kept_units // size)
            if len(new_values) != 1:
                raise ValueError(
                    f"{hub.name}'s blocks of different widths keep different shares of their "
                    f"units ({sorted(new_values)} for `{field}`), which one config value cannot "
                    "hold. Use a ratio that leaves whole numbers in every block, or no round_to.")
            changes[field] = new_values.pop()
        return changes

    def apply(self):
        """Builds the smaller model. Returns (new_model, report)."""
        self.plan()
        hub = self.hub
        changes = self.changes()
        if TOP_K_FIELD in changes and changes[TOP_K_FIELD] != hub.config[TOP_K_FIELD]:
            self.notes.append(f"{TOP_K_FIELD}: {hub.config[TOP_K_FIELD]} -> "
                              f"{changes[TOP_K_FIELD]}, as only that many experts are left")
        new_model = hub.build(changes, keep_preprocessor=True)
        axes.slice_weights(hub, self.labels, self.keep, new_model)
        if self.reconstruct is not None:
            readers = refitting.find_readers(hub, self.labels, self.keep)
            refitting.measure(hub, readers, self.reconstruct)
            refitting.refit(hub, self.labels, self.keep, readers, new_model)
            self.notes.append(f"re-fitted {len(readers)} layer(s) that read removed heads or "
                              "units, by least squares on the calibration data")
        rows = []
        for (kind, block), kept in sorted(self.keep.items(),
                                          key=lambda kv: (_block_order(kv[0][1]), kv[0][0])):
            name = (hub.blocks[block].name if isinstance(block, int) else
                    block if block is not None else hub.backbone.name)
            rows.append(LayerWidth(name, kind, self.labels.size_of(kind, block), len(kept)))
        report = StructuredReport(
            layers=rows, params_before=hub.model.count_params(),
            params_after=new_model.count_params(), flops_before=None, flops_after=None,
            frozen=[], notes=list(self.notes),
        )
        return new_model, report

    def masked_copy(self):
        """A same-size copy of the model with every removed head, unit and channel zeroed.

        For heads and units it computes what `apply()`'s smaller model computes.
        """
        self.plan()
        copy = self.hub.build({})
        for source, target in zip(self.hub.model.weights, copy.weights):
            target.assign(np.array(keras.ops.convert_to_numpy(source)))  # a copy, not shared
        axes.zero_removed(self.hub, self.labels, self.keep, copy)
        return copy


_EMBEDDING_FIELDS = ("embedding_dim", "embedding_size")


def _block_order(block):
    """Blocks by index, then layers outside the blocks by name (None: model-wide)."""
    return (isinstance(block, str), block if isinstance(block, int) else 0, str(block))


_HINT = ("A ratio of 0.5 removes half of the heads (or units, or channels) of every block; "
         "0 keeps them all.")
