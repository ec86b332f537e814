"""`prune_to_budget`: the widths that meet a latency, size or FLOPs budget.

A budget is met by measuring candidates, never by guessing a ratio: each candidate
model is built by structured pruning, and its cost is read off the model (params,
FLOPs) or measured in LiteRT beside the dense model (latency, alternating rounds on
this machine, or a `device` callable for another one). FLOPs never stand in for latency.

Without data every group loses the same share of channels, and the share is found by
bisection. With data the widths differ per group: each group is pruned alone to a few
shares and the change of the model's outputs on the data is recorded (a sensitivity
map, `allocation.py`); each group's own saving is measured too, and every group takes
the share that minimises its change net of its priced saving, the price found by
bisection under the budget (or, with `group_costs=None`, the largest share whose change
stays below a tolerated change, as FastNAS does). Groups the model barely needs, or
whose channels cost the most, then give up more channels than others. Where a step of
widths leaves the result far below the budget (under 0.9 of it), groups take back
channels one at a time, each candidate measured, until the next would miss.

A keras_hub model with data is searched over a grid of directions (units, heads, both,
both with the residual width), each scaled to the budget, and the candidate with the
least calibration loss is kept, as Minitron does: a CausalLM's next-token loss on the
data, or for other models how far their outputs moved.
"""

import dataclasses
import functools

import numpy as np

from keras_prune._data import samples
from keras_prune._progress import Progress
from keras_prune._validation import check_int
from keras_prune._views.hub import is_hub_model, is_task
from keras_prune.structured.allocation import (
    MEASURED_SHARE,
    SHARES,
    SensitivityMap,
    fingerprint,
    remembered,
    scaled_savings,
)
from keras_prune.structured.api import prune_structured
from keras_prune.structured.candidates import (
    DIRECTIONS,
    BudgetReport,
    Candidate,
    HubShares,
    between,
    describe_ratio,
    format_cost,
)
from keras_prune.structured.costs import (
    Meter,
    is_causal_lm,
    next_token_loss,
    output_change,
    outputs_on,
)
from keras_prune.structured.pruner import StructuredPruner, rounded_width
from keras_prune.structured.rebuild import count_flops
from keras_prune.structured.training import update_batchnorm_statistics

_MAX_SHARE = 0.9
_KINDS = ("latency", "latency_ms", "params", "flops")
_GROUP_COSTS = ("auto", "latency", "params", "flops", None)


def prune_to_budget(model, *, latency=None, latency_ms=None, params=None, flops=None,
                    data=None, importance="l1", round_to=8, threads=1, device=None,
                    steps=8, input_shapes=None, group_costs="auto", verbose=1):
    """Structured pruning to a budget; returns `(smaller_model, BudgetReport)`.

    Exactly one budget: `latency`, `params` or `flops` as a fraction of the model's own
    (0.5 = half), or absolute: `latency_ms` in milliseconds, `params` as an integer count.

    Example:

    ```python
    small, report = keras_prune.structured.prune_to_budget(model, latency=0.6,
                                                            data=x_train[:256])
    print(report)   # the candidates tried, measured; the chosen one's widths
    ```

    Args:
        model: a built Functional/Sequential model, or a keras_hub model (it keeps its
            class; every block loses the same share of heads and units; with `data`,
            the grid of directions above).
        latency, latency_ms, params, flops: the budget (one of them).
        data: samples (any form `data=` takes; up to 256 are used). With data, widths
            are chosen per group from a sensitivity map and each group's cost, and every
            candidate's (and the result's) BatchNormalization statistics are re-estimated
            on the data; without, every group loses the same share.
        group_costs: with data, what a group's channels are priced by: "auto" (the
            budget's own quantity; for latency each group is measured in LiteRT, one
            conversion per group), "latency", "params", "flops" (counted, no
            conversions), or None (no prices: every group takes the largest share whose
            output change stays under a tolerated one, as FastNAS does).
        importance: how channels are ranked within a group (see `prune_structured`).
        round_to: keep channel counts multiples of this (8 suits SIMD kernels).
        threads: LiteRT interpreter threads for latency.
        device: for latency on another machine, a callable taking a list of .tflite
            file bytes and returning one latency in microseconds per file; by default
            LiteRT here, candidates timed beside the dense model in alternating rounds.
        steps: bisection steps (each builds and measures one candidate).
        input_shapes: for latency, fixed input shapes for the LiteRT files, as
            `tflite.convert` takes them ({input name: shape without the batch}); a
            keras_hub text model needs them (e.g. {"token_ids": (128,),
            "padding_mask": (128,)}) as its sequence length is not fixed.
        verbose: 1 prints one progress line, 0 nothing.

    Returns:
        `(smaller_model, BudgetReport)`; `report.candidates` lists every model tried.

    Raises:
        ValueError: for no budget or several, a budget outside its range, or one no
            candidate meets (the message names the smallest cost reached).
    """
    kind, value, fraction = _check_budget(latency, latency_ms, params, flops)
    steps = check_int("steps", steps, minimum=1)
    if group_costs not in _GROUP_COSTS:
        raise ValueError(f"Argument `group_costs` must be one of {_GROUP_COSTS}. Received: "
                         f"group_costs={group_costs!r}.")
    group_costs = kind if group_costs == "auto" else group_costs
    found = None if data is None else samples(model, data, limit=256)
    progress = Progress("Pruning to budget", verbose)
    meter = Meter(kind, model, threads, device, input_shapes)
    with progress.stage(f"measure the dense model's {kind}"):
        dense_cost = meter.dense_cost()
    target = value * dense_cost if fraction else value
    if target >= dense_cost:
        raise ValueError(
            f"The budget ({format_cost(kind, target)}) is not below the dense model's own "
            f"({format_cost(kind, dense_cost)}): there is nothing to prune for it. Pass a smaller "
            "budget (e.g. latency=0.7 for 70% of the dense latency)."
        )
    search = _Search(model, meter, target, importance, round_to, found)
    if found is not None and is_hub_model(model):
        method = "grid"
        with progress.stage("search each direction of the grid"):
            search.grid(steps)
    elif found is None or is_hub_model(model):
        method = "uniform"
        with progress.stage("search one share for every group"):
            search.uniform(steps)
        if is_hub_model(model) and not any(c.meets for c in search.candidates):
            # Heads and units alone did not reach it: the residual width goes too, by the
            # same share (GPT-2, BERT, ViT only lose heads together with the width).
            search.include_residual_width()
            with progress.stage("search again with the residual width"):
                search.uniform(steps)
    else:
        method = "sensitivity" + (f", {group_costs} priced" if group_costs else "")
        with progress.stage("sensitivity of each group"):
            search.sensitivity(None if group_costs is None else (
                meter if group_costs == kind else
                Meter(group_costs, model, threads, device, input_shapes)),
                key=(importance, round_to, group_costs, threads, id(device), input_shapes))
        with progress.stage("search the price of a group's cost" if group_costs
                            else "search the tolerated output change"):
            search.by_level(steps)
    chosen = search.confirmed(steps) if kind == "latency" else search.best()
    if chosen is None:
        smallest = min(search.candidates, key=lambda c: c.cost)
        raise ValueError(
            f"No candidate meets the budget {format_cost(kind, target)}: the smallest reached "
            f"is {format_cost(kind, smallest.cost)} ({smallest.cost / dense_cost:.3f}x of the dense "
            f"model), at {describe_ratio(smallest.ratio)}. Pass a budget of at least that, "
            "or lower round_to."
        )
    small, structured = search.build(chosen.ratio)
    progress.done(f"{chosen.cost / dense_cost:.3f}x {kind}")
    notes = []
    if kind == "latency":
        notes.append(f"latency measured in {'the given device' if device else 'LiteRT here'} "
                     f"({threads} thread(s)), each candidate beside the dense model")
    notes += search.notes
    report = BudgetReport(kind, target, dense_cost, chosen, search.candidates, structured,
                          method, notes)
    return small, report


def _check_budget(latency, latency_ms, params, flops):
    given = {name: value for name, value in zip(_KINDS, (latency, latency_ms, params, flops))
             if value is not None}
    if len(given) != 1:
        raise ValueError(
            "Pass exactly one budget: latency= (a fraction of the dense latency, e.g. 0.5), "
            "latency_ms=, params= (a fraction, or a count) or flops= (a fraction). "
            f"Received: {', '.join(f'{k}={v!r}' for k, v in given.items()) or 'none'}."
        )
    (name, value), = given.items()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value <= 0:
        raise ValueError(f"Argument `{name}` must be a positive number. Received: "
                         f"{name}={value!r}.")
    if name == "latency_ms":
        return "latency", float(value) * 1000.0, False
    if name == "params" and isinstance(value, (int, np.integer)) and value > 1:
        return "params", float(value), False
    if not value < 1:
        raise ValueError(
            f"Argument `{name}` as a fraction of the dense model's must be in (0, 1). "
            f"Received: {name}={value!r}." + (" For a parameter count pass an integer."
                                               if name == "params" else ""))
    return name, float(value), True


class _Search:
    """Candidates built and measured; the cheapest search that meets the budget."""

    def __init__(self, model, meter, target, importance, round_to, found):
        self.model, self.meter, self.target = model, meter, target
        self.importance, self.round_to, self.found = importance, round_to, found
        self.candidates = []
        self._map = SensitivityMap({})
        self._seen = {}  # layer widths -> the candidate built with them
        self._last = None  # (ratio, model, report) of the last build: confirm, then return
        self.with_hidden = False  # keras_hub: the residual width goes too (see prune_to_budget)
        self.notes = []

    @functools.cached_property
    def _reference(self):
        """The dense model's outputs on the data, computed when an output change is first
        needed (a CausalLM's candidates are scored by next-token loss instead)."""
        return outputs_on(self.model, self.found)

    def build(self, ratio):
        if self._last is not None and self._last[0] == ratio:
            return self._last[1:]
        hub = dataclasses.asdict(self._shares(ratio)) if is_hub_model(self.model) else {}
        small, report = prune_structured(  # a keras_hub model: `ratio` is not read
            self.model, ratio=0.5 if hub else ratio, importance=self.importance,
            data=None if self.found is None else self.found.x, round_to=self.round_to,
            verbose=0, **hub)
        if self.found is not None and not is_hub_model(small):
            # Removing channels shifts what every later BatchNormalization sees: without
            # fresh statistics the output change measures stale statistics, not the widths.
            update_batchnorm_statistics(small, self.found.x)
        self._last = (ratio, small, report)
        return small, report

    def include_residual_width(self):
        """From now on a keras_hub candidate loses `hidden_dim` by its share too."""
        self.with_hidden, self._last, self._seen = True, None, {}

    def try_ratio(self, ratio):
        small, report = self.build(ratio)
        widths = (tuple((row.layer, row.after) for row in report.layers)
                  or (ratio, report.params_after))
        if widths in self._seen:  # another ratio that rounds to the same widths
            return self._seen[widths]
        cost = self.meter.cost(small)
        error = None if self.found is None else (
            next_token_loss(small, self.found) if is_causal_lm(small)
            else output_change(self._reference, outputs_on(small, self.found)))
        candidate = Candidate(ratio, cost, small.count_params(), count_flops(small)
                              if not is_hub_model(small) else None, error, cost <= self.target)
        self.candidates.append(candidate)
        self._seen[widths] = candidate
        return candidate

    def confirmed(self, steps, attempts=3):
        """The best candidate after timing it again (the cost becomes the mean of both
        measurements); a candidate that then misses makes way for the next one, and
        where that one lies far below the budget the ratios between the two are searched
        first (a small model's latency is noisy near the budget)."""
        for _ in range(attempts):
            chosen = self.best()
            if chosen is None or chosen.confirmed:
                return chosen
            small, _ = self.build(chosen.ratio)
            chosen.cost = (chosen.cost + self.meter.cost(small)) / 2
            chosen.meets = chosen.cost <= self.target
            chosen.confirmed = True
            fallback = self.best()
            if not chosen.meets and fallback is not None and fallback.cost < 0.9 * self.target:
                self._bisect(0.0, 1.0, functools.partial(between, fallback.ratio, chosen.ratio),
                             max(steps // 2, 1))
        return self.best()

    def best(self):
        meeting = [c for c in self.candidates if c.meets]
        if not meeting:
            return None
        if self.found is not None and all(c.output_error is not None for c in meeting):
            close = [c for c in meeting if c.cost >= 0.9 * self.target] or meeting
            return min(close, key=lambda c: c.output_error)
        return max(meeting, key=lambda c: c.cost)

    def uniform(self, steps, direction=None):
        """Bisection over one share for every group (or along a keras_hub `direction`)."""
        def ratio(share):
            return share if direction is None else HubShares(
                *(share * weight for weight in dataclasses.astuple(direction)))

        if not self.try_ratio(ratio(_MAX_SHARE)).meets:
            return
        high, low, close = self._bisect(_MAX_SHARE, 0.0, ratio, steps - 1)
        if close:
            return
        if not is_hub_model(self.model):
            self.refine(high, low, steps)
        elif not isinstance(ratio(high), HubShares) or ratio(high).units:
            self.refine_units(self._shares(ratio(high)), self._shares(ratio(low)), steps)

    def grid(self, steps):
        """Minitron-style: each direction (units; heads; both; both with the residual
        width) is scaled until it meets the budget, every candidate's cost measured and
        its output change on the data recorded; `best` then takes the candidate near the
        budget whose outputs moved least. A direction the family cannot prune is noted.
        The width direction joins only where outputs stay comparable (a Task's logits)
        or when no other direction meets the budget (a backbone's features narrow)."""
        comparable = is_task(self.model)
        for name, direction in DIRECTIONS.items():
            if direction.hidden and not comparable and any(c.meets for c in self.candidates):
                self.notes.append(f"grid: '{name}' not tried: the backbone's features "
                                  "would narrow, so its outputs cannot be compared")
                continue
            try:
                self.uniform(steps, direction)
            except (NotImplementedError, ValueError) as error:
                self.notes.append(f"grid: '{name}' not tried: {str(error)[:160]}")

    def sensitivity(self, meter=None, key=()):
        """The sensitivity map; with a `meter`, each group's saving at half its channels
        (latencies of every group's model in one run beside the dense one). A map an
        earlier call computed for the same weights, data and `key` is reused."""
        self._map, reused = remembered(fingerprint(self.model, self.found.x, *key),
                                       lambda: self._new_map(meter))
        if reused:
            self.notes.append("the sensitivity map and group costs of an earlier call (same "
                              "weights, data and settings) were reused")

    def _new_map(self, meter):
        errors, measurables = {}, {}
        for name in self._groups:
            errors[name] = []
            for share in SHARES:
                small, _ = self.build({name: share})
                errors[name].append((share, output_change(self._reference,
                                                          outputs_on(small, self.found))))
                if meter is not None and share == MEASURED_SHARE:
                    measurables[name] = meter.measurable(small)
        savings = None
        if meter is not None:
            measured = dict(zip(measurables, meter.savings(list(measurables.values()))))
            savings = scaled_savings(measured, lambda name, share: self._groups[name][0]
                                     - self._width(name, share))
        return SensitivityMap(errors, savings)

    def by_level(self, steps):
        """Bisection over the map's levels (prices, or tolerated changes) for the
        smallest that meets the budget, then the gap below it filled."""
        levels = self._map.levels()
        if not levels:
            return
        if not self.try_ratio(self._map.shares_at(levels[-1])).meets:
            self.uniform(steps)  # even the largest shares miss: fall back to a uniform share
            return
        low, high = -1, len(levels) - 1  # high meets; find the smallest index that meets
        for _ in range(steps - 1):
            if high - low <= 1:
                break
            middle = (low + high) // 2
            candidate = self.try_ratio(self._map.shares_at(levels[middle]))
            if candidate.meets:
                high = middle
            else:
                low = middle
        self.refine(self._map.shares_at(levels[high]),
                    self._map.shares_at(levels[low]) if low >= 0 else {}, steps)

    def refine(self, cheaper, dearer, steps):
        """Fills the gap a step of widths leaves below the budget (NetAdapt's small
        steps, each measured): between `cheaper` (meets the budget, far below it) and
        `dearer` (misses it), groups take `dearer`'s share one at a time, and bisection
        over how many finds the most that still meet the budget; then the next group in
        line takes back part of its channels, by bisection over its share. Groups the data
        shows most sensitive get their channels back first; without data, the smallest
        (the finest steps)."""
        best = self.best()
        if best is None or best.cost >= 0.9 * self.target:
            return
        groups = self._groups
        cheaper, dearer = (ratio if isinstance(ratio, dict) else dict.fromkeys(groups, ratio)
                           for ratio in (cheaper, dearer))
        moving = sorted((name for name in groups  # only groups whose width would change
                         if self._width(name, cheaper.get(name, 0.0))
                         != self._width(name, dearer.get(name, 0.0))),
                        key=lambda name: -(self._map.sensitivity(name) or -groups[name][0]))

        def moved(count):
            return {**cheaper, **{name: dearer.get(name, 0.0) for name in moving[:count]}}

        count, _, close = self._bisect(0, len(moving), moved, steps, whole=True)
        if not close and count < len(moving):  # a whole group's step was too large
            name, base = moving[count], moved(count)
            self._bisect(cheaper.get(name, 0.0), dearer.get(name, 0.0),
                         lambda share: {**base, name: share}, steps)

    def refine_units(self, cheaper, dearer, steps):
        """`refine` for a keras_hub model, whose blocks all keep the same widths: the
        feed-forward units (the finest step) go back from `cheaper`'s share towards
        `dearer`'s, the heads and width staying at `cheaper`'s, by bisection."""
        best = self.best()
        if best is None or best.cost >= 0.9 * self.target or cheaper.units <= dearer.units:
            return
        self._bisect(cheaper.units, dearer.units,
                     lambda share: dataclasses.replace(cheaper, units=share), steps)

    def _bisect(self, meets, misses, ratio_at, steps, whole=False):
        """Bisection between a value whose candidate (`ratio_at(value)`) meets the budget
        and one whose misses it, stopping at a candidate within 0.9 of the budget.
        Returns (meets, misses, stopped close); `whole` bisects integers."""
        for _ in range(steps):
            if whole and abs(meets - misses) <= 1:
                break
            middle = (meets + misses) // 2 if whole else (meets + misses) / 2
            candidate = self.try_ratio(ratio_at(middle))
            if not candidate.meets:
                misses = middle
                continue
            meets = middle
            if candidate.cost >= 0.9 * self.target:
                return meets, misses, True
        return meets, misses, False

    def _shares(self, ratio):
        """A keras_hub candidate's ratio as HubShares (a number: heads and units, and the
        width once it goes too)."""
        if isinstance(ratio, HubShares):
            return ratio
        return HubShares(heads=ratio, units=ratio, hidden=ratio if self.with_hidden else 0.0)

    @functools.cached_property
    def _groups(self):
        """{source layer name: (channel count, rounding step)} of the groups that can
        lose channels."""
        pruner = StructuredPruner(self.model, 0.5, round_to=self.round_to)
        return {group.sources[0].name: (group.size, self.round_to if group.kind == "channels"
                                        else None)
                for group in pruner.graph.groups if not group.frozen and group.sources}

    def _width(self, name, share):  # as StructuredPruner rounds it
        size, step = self._groups[name]
        return rounded_width(size - int(size * share + 1e-9), size, step)
