"""The structured front door: `prune_structured` and `remove_blocks` send a keras_hub
model to the config-level pruner (`structured/hub/`) and any other model to the graph
pruner (`structured/pruner.py`). The two pruners are twins beneath this module and never
import each other."""

from keras_prune._progress import Progress
from keras_prune._validation import check_fraction
from keras_prune._views.hub import is_hub_model
from keras_prune.structured.blocks import remove_residual_blocks
from keras_prune.structured.hub.axes import ProbeError
from keras_prune.structured.hub.depth import remove_transformer_blocks
from keras_prune.structured.hub.entries import EntryPruner
from keras_prune.structured.hub.pruner import TransformerPruner
from keras_prune.structured.hub.stages import StagePruner, is_config_graph_model
from keras_prune.structured.hub.towers import TowerPruner, has_towers
from keras_prune.structured.pruner import StructuredPruner
from keras_prune.structured.results import RATIO_HINT


def prune_structured(model, ratio=0.5, importance="l1", data=None, round_to=None, ignore=None,
                     global_ranking=False, verbose=1, *, heads=None, units=None, hidden=None,
                     reconstruct=None, experts=None):
    """Removes whole channels, filters, units and heads; returns (new_model, report).

    The new model is a plain Functional/Sequential model with fewer channels and the
    surviving weights; it saves as .keras and converts with keras_prune.tflite. The
    input model is unchanged. `StructuredPruner` offers an interactive mode.

    A keras_hub Backbone or Task (GPT-2, BERT, Gemma, Llama, Mistral, ViT, ...) loses
    the same number of heads and feed-forward units in every block and stays its
    class (a Task keeps its preprocessor, so `generate()` works); see
    `keras_prune.structured.hub.TransformerPruner`.

    Example:

    ```python
    smaller, report = keras_prune.structured.prune_structured(model, ratio=0.5)
    print(report)          # widths per layer, params and FLOPs before/after
    ```

    Args:
        model: a built Functional or Sequential Keras 3 model (nested ones too).
        ratio: fraction of each group's channels to remove, in [0, 1) (default 0.5),
            or a dict {layer_name: ratio} for the layers to prune.
        importance: a criterion name ("l1" default, "l2", "bn_scale", "activation",
            "apoz", "entropy", "taylor", "random") or a callable group -> scores.
        data: samples for data-based criteria (`(x, y)` for "taylor").
        round_to: keep channel counts multiples of this (e.g. 8); None keeps any.
        ignore: layer names whose output channels must be kept.
        global_ranking: rank channels across groups instead of within each.
        verbose: 1 (default) prints one progress line (stages and their seconds),
            0 prints nothing.
        heads, units, hidden: keras_hub models only: the fractions of attention heads,
            feed-forward units and residual channels (`hidden_dim`) to remove from
            every block. `heads` and `units` default to `ratio`, `hidden` to 0.
        reconstruct: keras_hub models only: calibration data on which the layers that
            read removed heads and units are re-fitted by least squares (no training).
        experts: keras_hub mixtures of experts only: the fraction of experts to remove
            from every block, ranked by the router's probability on `data` (default 0:
            every expert keeps its place and loses `units` of its width).

    Returns:
        `(new_model, StructuredReport)`.

    Raises:
        ValueError: for a ratio outside [0, 1), unknown layer names, a data-based
            criterion without `data`, or an unbuilt model.
        TypeError: for a subclassed model (no layer graph) or a non-model.
    """
    if is_hub_model(model):
        return _prune_hub_model(model, ratio, importance, data, round_to, ignore,
                                global_ranking, verbose, heads, units, hidden, reconstruct,
                                experts)
    _refuse_transformer_options(
        heads=heads, units=units, hidden=hidden, reconstruct=reconstruct, experts=experts,
        instead=f" only; for {type(model).__name__} pass `ratio` (a number, or a dict per layer)")
    progress = Progress("Structured pruning", verbose)
    pruner = StructuredPruner(model, ratio, importance, data=data, round_to=round_to,
                              ignore=ignore, global_ranking=global_ranking)  # checks arguments
    with progress.stage("dependency graph"):
        pruner.graph  # noqa: B018 (traces the graph: the first slow step)
    with progress.stage(f"score {len(pruner.graph.groups)} channel groups"):
        pruner.plan()
    with progress.stage("rebuild"):
        smaller, report = pruner.apply()
    progress.done(f"{smaller.count_params() / max(model.count_params(), 1):.2f}x params")
    return smaller, report


def _prune_hub_model(model, ratio, importance, data, round_to, ignore, global_ranking, verbose,
                     heads, units, hidden, reconstruct, experts):
    if global_ranking:
        raise ValueError(
            f"global_ranking=True would give every block of {type(model).__name__} its own "
            "widths, which its keras_hub config cannot hold. Pass global_ranking=False "
            "(the same number of heads and units goes from every block)."
        )
    if ignore:
        raise ValueError(
            f"Argument `ignore` is not supported for keras_hub models. Received: ignore={ignore!r}"
            ". Pass heads=0, units=0 or hidden=0 to keep a kind of channel."
        )
    ratio = check_fraction("ratio", ratio, hint=RATIO_HINT)
    progress = Progress("Structured pruning", verbose)
    if has_towers(model):
        return _prune_towers(model, importance, data, round_to, verbose, progress,
                             ratio if heads is None else heads, ratio if units is None else units,
                             hidden, reconstruct, experts)
    if is_config_graph_model(model):
        _refuse_transformer_options(
            heads=heads, units=units, hidden=hidden, reconstruct=reconstruct, experts=experts,
            instead=f"; {type(model).__name__} is a CNN whose filters follow `ratio`")
        with progress.stage("probe the config's widths"):
            pruner = StagePruner(model, ratio, importance, data=data, round_to=round_to)
        with progress.stage("prune and rebuild"):
            by_entries = importance == "l1" and data is None  # weights alone rank them
            try:
                smaller, report = pruner.apply()
            except NotImplementedError as error:  # custom blocks the graph cannot see into
                if not by_entries:
                    raise
                try:  # the config's widths alone, checked against the zeroed original
                    smaller, report = EntryPruner(model, ratio, round_to=round_to).apply()
                except NotImplementedError as alone:  # both reasons, the advice once
                    first, _, _ = str(error).partition(" Prune it unstructured")
                    raise NotImplementedError(
                        f"{first} Its config entries alone: {alone}") from None
            else:
                if by_entries and pruner.unreachable:  # some entries kept: try them alone
                    smaller, report = _smaller_by_entries(model, ratio, round_to,
                                                          smaller, report)
        progress.done(f"{report.params_ratio:.2f}x params")
        return smaller, report
    try:
        pruner = TransformerPruner(
            model, heads=ratio if heads is None else heads,
            units=ratio if units is None else units, hidden=0.0 if hidden is None else hidden,
            importance=importance, data=data, round_to=round_to,
            reconstruct=reconstruct,
            experts=0.0 if experts is None else experts)  # checks the arguments first
        with progress.stage("score heads and units"):
            pruner.plan()
        with progress.stage("rebuild"):
            smaller, report = pruner.apply()
    except (ProbeError, KeyError) as error:  # a layout the config probes cannot follow
        detail = error.args[0] if isinstance(error, ProbeError) else f"no {error} in the plan"
        raise NotImplementedError(
            f"{type(model).__name__}'s layout is not supported by keras_hub structured "
            f"pruning yet: {detail} (e.g. experts or towers whose widths the config ties "
            "together). Prune it unstructured (prune_low_magnitude) or one-shot "
            "(prune_one_shot), which work on every keras_hub model."
        ) from None
    if report.params_after >= report.params_before and max(
            pruner.heads, pruner.units, pruner.hidden, pruner.experts) > 0:
        raise NotImplementedError(
            f"Nothing of {type(model).__name__} shrank: "
            + "; ".join(report.notes or ["no weight holds the heads or units its config names"])
            + ". Prune it unstructured (prune_low_magnitude) or one-shot (prune_one_shot).")
    progress.done(f"{report.params_ratio:.2f}x params")
    return smaller, report


def _smaller_by_entries(model, ratio, round_to, smaller, report):
    """The entry pruner's result where it is smaller than the graph's (CSPNet: its
    split stages tie channels the graph cannot see), else the graph's."""
    try:
        by_entries, entries_report = EntryPruner(model, ratio, round_to=round_to).apply()
    except NotImplementedError:
        return smaller, report
    if by_entries.count_params() >= smaller.count_params():
        return smaller, report
    entries_report.notes.append(
        f"the dependency graph reached {report.params_ratio:.2f}x (entries whose channels "
        "enter custom layers kept); the config's entries pruned on their own, checked "
        "against the zeroed original, reach further")
    return by_entries, entries_report


def _prune_towers(model, importance, data, round_to, verbose, progress, heads, units, hidden,
                  reconstruct, experts):
    name = type(model).__name__
    if reconstruct is not None:
        raise ValueError(
            f"{name} is made of towers (sub-models with their own inputs), which are not "
            "re-fitted: pass no `reconstruct`. Received: reconstruct=given.")
    if data is not None and not isinstance(data, dict):
        raise ValueError(
            f"{name} is made of towers, each with its own inputs: pass `data` as a dict of "
            f"its inputs by name ({[t.name for t in model.inputs]}). Received: "
            f"{type(data).__name__}.")
    with progress.stage("score every tower's heads and units"):
        pruner = TowerPruner(model, heads=heads, units=units, hidden=hidden or 0.0,
                             experts=0.0 if experts is None else experts, round_to=round_to,
                             importance=importance, data=data)
    if not pruner.pruners:
        raise NotImplementedError(
            f"Nothing of {name} shrank: " + "; ".join(pruner.notes or ["no tower to prune"])
            + ". Prune it unstructured (prune_low_magnitude) or one-shot (prune_one_shot).")
    with progress.stage("rebuild"):
        smaller, report = pruner.apply()
    progress.done(f"{report.params_ratio:.2f}x params")
    return smaller, report


def _refuse_transformer_options(instead, **options):
    """The keras_hub transformer knobs (`heads`, ...) name what to pass instead elsewhere."""
    for name, value in options.items():
        if value is not None:
            raise ValueError(f"Argument `{name}` applies to keras_hub transformers{instead}. "
                             f"Received: {name}={value!r}.")


def remove_blocks(model, count=1, *, blocks=None, importance="l1", data=None):
    """Drops residual blocks (`x + f(x)` -> `x`); returns (new_model, report).

    A keras_hub Backbone or Task loses whole transformer blocks instead and stays
    its class with `num_layers` reduced; blocks are chosen by Block Influence
    (1 - cos(block input, block output) on `data`, ShortGPT), or named in `blocks`
    (names or indices); importance="random" picks at random.

    Example:

    ```python
    shallower, report = keras_prune.structured.remove_blocks(model, count=1)
    ```

    Args:
        model: a built Functional model with residual blocks, or a keras_hub model.
        count: how many of the lowest-scoring blocks to drop.
        blocks: Add layer names to drop instead (see `find_residual_blocks`).
        importance: "l1" (the branch's output scale, from weights) or "activation"
            (||f(x)|| / ||x|| over `data`).
        data: samples for "activation" (and for keras_hub models' Block Influence).

    Returns:
        `(new_model, StructuredReport)`.
    """
    if is_hub_model(model):
        hub_importance = "random" if importance == "random" else "influence"
        return remove_transformer_blocks(model, count, blocks=blocks, importance=hub_importance,
                                         data=data)
    return remove_residual_blocks(model, count, blocks=blocks, importance=importance, data=data)
