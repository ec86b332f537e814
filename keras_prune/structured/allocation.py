"""Per-group widths from a sensitivity map: the share of its channels each group gives up.

Each group is pruned alone to a few shares (`SHARES`) and the change of the model's
outputs on the data is recorded. Two rules turn the map into widths, each with one
level that `prune_to_budget` bisects until the budget is met:

- a tolerated change (FastNAS): every group takes the largest share whose change stays
  below the level; what the group costs plays no part;
- a price (a Lagrangian knapsack, as HALP solves over a latency table): every group takes
  the share that minimises `change - price x cost saved`. The cost a group saves is its
  own, measured once: the group pruned alone to half, every such model timed beside the
  dense one in one LiteRT run (or its params or FLOPs counted), and scaled to each
  share by the channels it removes. A group whose channels cost much latency for little
  change of the outputs goes first.

The map and the savings do not depend on the budget: the last few are remembered, keyed
by the model's weights, the data and the settings, so another budget for the same model
skips them.
"""

import collections
import dataclasses
import hashlib

import keras
import numpy as np

SHARES = (0.25, 0.5, 0.75)  # shares of a group's channels removed in the map
MEASURED_SHARE = 0.5  # each group's saving is measured at this share
_KEPT = 4  # maps kept for later calls (another budget for the same model and data)
_MAPS = collections.OrderedDict()


@dataclasses.dataclass
class SensitivityMap:
    """{group: [(share, output change)]}, and with costs {group: {share: cost saved}}."""

    errors: dict
    savings: dict | None = None  # None: the tolerance rule

    def levels(self):
        """Every level at which some group's choice changes, ascending."""
        if self.savings is None:
            return sorted({error for errors in self.errors.values() for _, error in errors})
        found = set()
        for name, errors in self.errors.items():
            options = [(0.0, 0.0)] + [(error, self.savings[name][share]) for share, error in errors]
            found.update((e2 - e1) / (s2 - s1) for e1, s1 in options for e2, s2 in options
                         if s2 > s1 and e2 >= e1)
        return sorted(found)

    def shares_at(self, level):
        """{group: share} that the rule gives at `level` (groups that keep all are left out)."""
        ratio = {}
        for name, errors in self.errors.items():
            if self.savings is None:
                allowed = [share for share, error in errors if error <= level]
                share = max(allowed, default=0.0)
            else:  # the least change net of the priced saving; ties go to the larger share
                _, _, share = min([(0.0, 0.0, 0.0)] + [
                    (error - level * self.savings[name][share], -share, share)
                    for share, error in errors])
            if share:
                ratio[name] = share
        return ratio

    def sensitivity(self, name):
        """How much the group's largest share changes the outputs (for ordering groups)."""
        return max((error for _, error in self.errors.get(name, [])), default=None)


def scaled_savings(measured, removed):
    """{group: {share: saving}} from each group's saving at `MEASURED_SHARE`, scaled by
    the channels every share removes (`removed(group, share)`). A saving the noise of a
    measurement made zero or negative counts as a tiny positive one."""
    floor = 1e-6 * max([abs(v) for v in measured.values()] + [1.0])
    savings = {}
    for name, saving in measured.items():
        base = max(removed(name, MEASURED_SHARE), 1)
        savings[name] = {share: max(saving, floor) * removed(name, share) / base
                         for share in SHARES}
    return savings


def remembered(key, compute):
    """The map computed for `key` by an earlier call, or `compute()` (then kept).
    Returns (map, whether it was remembered)."""
    if key in _MAPS:
        _MAPS.move_to_end(key)
        return _MAPS[key], True
    _MAPS[key] = compute()
    while len(_MAPS) > _KEPT:
        _MAPS.popitem(last=False)
    return _MAPS[key], False


def fingerprint(model, x, *settings):
    """A key for `model`'s weights, the data and the search's settings."""
    digest = hashlib.sha256(repr(settings).encode())
    for value in [*model.weights, *keras.tree.flatten(x)]:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(value))
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
