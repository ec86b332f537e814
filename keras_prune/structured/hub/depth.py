"""Depth pruning of keras_hub transformers: whole blocks go, `num_layers` shrinks."""

import numbers

import keras
import numpy as np

from keras_prune._validation import check_int
from keras_prune._views.hub import DEPTH_FIELD, HubModel, block_stacks
from keras_prune.structured.hub import scores
from keras_prune.structured.results import StructuredReport

_IMPORTANCE = ("influence", "random")


def remove_transformer_blocks(model, count=1, *, blocks=None, importance="influence", data=None,
                              seed=None):
    """Removes whole transformer blocks; returns (new_model, report).

    The result is the same keras_hub class with `num_layers` reduced and the
    surviving blocks' weights. Blocks are chosen by Block Influence (ShortGPT,
    arXiv 2403.03853): 1 - cos(block input, block output) over the calibration
    `data`, lowest first; or named with `blocks` (names or indices).
    """
    hub = HubModel.of(model)
    total = len(hub.blocks)
    if DEPTH_FIELD not in hub.config or not total:
        raise ValueError(
            f"{hub.name} has no `{DEPTH_FIELD}` in its config or no list of blocks, so its "
            "depth cannot be changed by config."
        )
    stacks = block_stacks(hub.backbone)
    if len(stacks) > 1:
        raise NotImplementedError(
            f"{hub.name} has {len(stacks)} stacks of blocks ({', '.join(stacks)}) and one "
            f"`{DEPTH_FIELD}` for them, so removing a block from one stack is not something "
            "its config can hold. Prune its heads and units with prune_structured instead.")
    chosen = _choose(hub, count, blocks, importance, data, seed)
    new_model = hub.build({DEPTH_FIELD: total - len(chosen)}, keep_preprocessor=True)
    owner = hub.block_of()
    survivors = [v for v in hub.model.weights if owner.get(id(v)) not in chosen]
    if len(survivors) != len(new_model.weights):
        raise ValueError(f"Internal error: {len(survivors)} surviving weights for "
                         f"{len(new_model.weights)} in the shallower {hub.name}.")
    for old, new in zip(survivors, new_model.weights):
        if tuple(old.shape) != tuple(new.shape):
            raise ValueError(f"Internal error: `{old.path}` {tuple(old.shape)} does not fit "
                             f"`{new.path}` {tuple(new.shape)}.")
        new.assign(np.array(keras.ops.convert_to_numpy(old)))  # a copy: JAX may donate
    names = [hub.blocks[i].name for i in sorted(chosen)]
    report = StructuredReport(
        layers=[], params_before=hub.model.count_params(), params_after=new_model.count_params(),
        flops_before=None, flops_after=None, frozen=[],
        blocks=[(name, [name]) for name in names],
        notes=[f"{DEPTH_FIELD}: {total} -> {total - len(chosen)}"],
    )
    return new_model, report


def _choose(hub, count, blocks, importance, data, seed):
    total = len(hub.blocks)
    if blocks is not None:
        names = [b.name for b in hub.blocks]
        chosen = set()
        for item in blocks:
            if isinstance(item, numbers.Integral) and 0 <= item < total:
                chosen.add(int(item))
            elif item in names:
                chosen.add(names.index(item))
            else:
                raise ValueError(
                    f"Argument `blocks` names {item!r}, which is not a block of {hub.name}. "
                    f"Blocks: indices 0..{total - 1} or names {names[:4]}..."
                )
    else:
        check_int("count", count, minimum=0)
        if importance not in _IMPORTANCE:
            raise ValueError(
                f"Argument `importance` must be one of {_IMPORTANCE} for the blocks of a "
                f"keras_hub model. Received: importance={importance!r}."
            )
        if importance == "random":
            chosen = set(np.random.default_rng(seed).permutation(total)[:count].tolist())
        else:
            if data is None:
                raise ValueError(
                    "Block Influence compares each block's input and output on calibration "
                    "data, so `data` is required (token-id dicts, images, or strings for a "
                    "Task with a preprocessor), or pass importance='random' or blocks=[...]."
                )
            influence = scores.block_influence(hub, data)
            chosen = set(np.argsort(influence, kind="stable")[:count].tolist())
    requested = len(chosen) if blocks is not None else count
    if requested >= total:
        received = (f"blocks={list(blocks)!r} ({requested} blocks)" if blocks is not None
                    else f"count={count}")
        raise ValueError(
            f"Argument `{'blocks' if blocks is not None else 'count'}` must leave at least "
            f"one of the {total} blocks of {hub.name} (remove at most {total - 1}). "
            f"Received: {received}."
        )
    return chosen

