"""What structured pruning returns besides the smaller model: per-layer widths and a report."""

import dataclasses

from keras_prune._text import table

RATIO_HINT = ("A ratio of 0.5 removes half of the channels (neurons, filters) of each "
               "prunable group; 1.0 would remove them all.")


@dataclasses.dataclass
class LayerWidth:
    layer: str
    kind: str  # "units", "filters", "output_dim" or "heads"
    before: int
    after: int


@dataclasses.dataclass
class StructuredReport:
    """What structured pruning changed: widths per layer, params, FLOPs, frozen groups.

    `str()` is a table; `to_dict()` plain data. FLOPs count one sample's forward
    pass (2 per multiply-add) of Dense, Conv and attention layers; None when the
    input size is not fixed.
    """

    layers: list
    params_before: int
    params_after: int
    flops_before: int | None
    flops_after: int | None
    frozen: list  # (group name, channels, reasons)
    blocks: list = dataclasses.field(default_factory=list)  # (Add name, branch layers) dropped
    shared: list = dataclasses.field(default_factory=list)  # (layer, why) reused, not copied
    # (layer, class, inner layers): layers without a rule whose own sub-layers keep every channel
    opaque: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)  # what was kept and why

    @property
    def params_ratio(self):
        return self.params_after / self.params_before if self.params_before else 1.0

    @property
    def flops_ratio(self):
        if not self.flops_before or self.flops_after is None:
            return None
        return self.flops_after / self.flops_before

    def to_dict(self):
        return {
            "layers": [dataclasses.asdict(row) for row in self.layers],
            "params_before": self.params_before,
            "params_after": self.params_after,
            "params_ratio": self.params_ratio,
            "flops_before": self.flops_before,
            "flops_after": self.flops_after,
            "flops_ratio": self.flops_ratio,
            "frozen": [
                {"group": name, "channels": size, "reasons": reasons}
                for name, size, reasons in self.frozen
            ],
            "blocks": [{"add": name, "layers": layers} for name, layers in self.blocks],
            "shared": [{"layer": name, "reason": reason} for name, reason in self.shared],
            "opaque": [{"layer": name, "class": cls, "inner_layers": inner}
                       for name, cls, inner in self.opaque],
            "notes": list(self.notes),
        }

    def __str__(self):
        changed = [(r.layer, r.kind, str(r.before), str(r.after)) for r in self.layers
                   if r.before != r.after]
        lines = []
        if changed:
            lines = table(("layer", "kind", "before", "after"), changed, right=(2, 3))
        if self.layers:
            lines.append(f"({len(self.layers) - len(changed)} layer(s) unchanged)")
        lines.append(f"params: {self.params_before:,} -> {self.params_after:,} "
                     f"({self.params_ratio:.3f}x)")
        if self.flops_ratio is not None:
            lines.append(f"FLOPs:  {self.flops_before:,} -> {self.flops_after:,} "
                         f"({self.flops_ratio:.3f}x)")
        for name, layers in self.blocks:
            lines.append(f"removed block: {name} ({len(layers)} layers: {', '.join(layers)})")
        for name, size, reasons in self.frozen:
            lines.append(f"frozen: {name} ({size} channels): {reasons[0]}"
                         + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""))
        for name, reason in self.shared:
            lines.append(f"shared with the input model: {name}: {reason}")
        for name, cls, inner in self.opaque:
            lines.append(
                f"not pruned: `{name}` ({cls}) has no structured-pruning rule, so its "
                f"{len(inner)} inner layer(s) ({', '.join(inner[:4])}"
                f"{', ...' if len(inner) > 4 else ''}) keep all their channels "
                "(keras_prune.structured.register_rule adds one)"
            )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)
