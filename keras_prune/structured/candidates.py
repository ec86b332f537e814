"""What `prune_to_budget` tries and reports: candidates, keras_hub shares, the report."""

import dataclasses

from keras_prune._text import table


@dataclasses.dataclass(frozen=True)
class HubShares:
    """The shares of a keras_hub model's heads, feed-forward units and residual width
    that one candidate removes (each block alike)."""

    heads: float = 0.0
    units: float = 0.0
    hidden: float = 0.0


# The grid's directions for a keras_hub model with data (Minitron's axes of width):
# each is scaled until the budget is met, and calibration loss picks among them.
DIRECTIONS = {"units": HubShares(units=1.0), "heads": HubShares(heads=1.0),
              "heads and units": HubShares(heads=1.0, units=1.0),
              "heads, units and width": HubShares(heads=1.0, units=1.0, hidden=1.0)}


def between(start, end, fraction):
    """The ratio `fraction` of the way from `start` to `end` (numbers, {layer: share}
    or HubShares, share by share)."""
    def mix(a, b):
        return a + (b - a) * fraction

    if isinstance(start, HubShares):
        return HubShares(*map(mix, dataclasses.astuple(start), dataclasses.astuple(end)))
    if isinstance(start, dict) or isinstance(end, dict):
        start, end = (r if isinstance(r, dict) else {} for r in (start, end))
        return {name: mix(start.get(name, 0.0), end.get(name, 0.0))
                for name in {**start, **end}}
    return mix(start, end)


@dataclasses.dataclass
class Candidate:
    """One model tried: how it was pruned and what it costs."""

    ratio: object  # the `ratio` given to prune_structured: a number or {layer: share}
    cost: float  # in the budget's units: microseconds, parameters or FLOPs
    params: int
    flops: int | None
    # on `data`: a CausalLM's next-token loss, else the outputs' relative squared change
    output_error: float | None = None
    meets: bool = False
    confirmed: bool = False  # measured a second time (latency)

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BudgetReport:
    """What `prune_to_budget` looked for, what it tried and what it chose."""

    kind: str  # "latency", "params" or "flops"
    target: float  # in the kind's units (latency in microseconds)
    dense_cost: float
    chosen: Candidate
    candidates: list
    structured: object  # the chosen model's StructuredReport (per-layer widths)
    method: str  # "uniform", "grid", "sensitivity" or "sensitivity, <cost> priced"
    notes: list = dataclasses.field(default_factory=list)

    @property
    def ratio(self):
        """The chosen model's cost as a fraction of the dense model's."""
        return self.chosen.cost / self.dense_cost if self.dense_cost else 1.0

    def to_dict(self):
        return {"kind": self.kind, "target": self.target, "dense_cost": self.dense_cost,
                "ratio": self.ratio, "method": self.method, "chosen": self.chosen.to_dict(),
                "candidates": [c.to_dict() for c in self.candidates],
                "layers": [dataclasses.asdict(r) for r in self.structured.layers],
                "notes": list(self.notes)}

    def __str__(self):
        unit = {"latency": "us", "params": "params", "flops": "FLOPs"}[self.kind]
        lines = [f"budget: {self.kind} <= {self.target:,.0f} {unit} "
                 f"({self.target / self.dense_cost:.3f}x of the dense {self.dense_cost:,.0f}); "
                 f"widths: {self.method}"]
        rows = [(describe_ratio(c.ratio), f"{c.cost:,.0f}", f"{c.cost / self.dense_cost:.3f}",
                 "-" if c.output_error is None else f"{c.output_error:.4f}",
                 ("chosen" if c is self.chosen else "yes") if c.meets else "no")
                for c in self.candidates]
        lines += table(("candidate", unit, "x dense", "calibration loss", "meets"), rows,
                       right=(1, 2, 3))
        lines.append(str(self.structured))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def format_cost(kind, value):
    if kind == "latency":
        return f"{value:,.0f} us ({value / 1000:.3f} ms)"
    return f"{value:,.0f} {'parameters' if kind == 'params' else 'FLOPs'}"


def describe_ratio(ratio):
    if isinstance(ratio, HubShares):
        return ", ".join(f"{name} {share:.2f}" for name, share in
                         dataclasses.asdict(ratio).items() if share) or "nothing removed"
    if isinstance(ratio, dict):
        shares = sorted(ratio.values())
        return (f"{len(shares)} groups, shares {shares[0]:.2f}-{shares[-1]:.2f}" if shares
                else "no group pruned")
    return f"ratio {ratio:.3f}"
