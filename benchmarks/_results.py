"""Shared by the benchmark scripts: rerunning some rows of a results file."""

import json
import os


def with_earlier_rows(path, rows, key):
    """`rows` (just measured) and the rows of the earlier results in `path` whose `key`
    they do not cover: rerunning some models keeps the others' results."""
    if not os.path.exists(path):
        return rows
    done = {row[key] for row in rows}
    with open(path) as file:
        return rows + [row for row in json.load(file) if row[key] not in done]
