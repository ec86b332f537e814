"""The layout docs/architecture.md promises, read from the sources (no Keras needed)."""

import ast
import pathlib

import keras_prune

PACKAGE = pathlib.Path(keras_prune.__file__).parent
ROOT = PACKAGE.parent
PRIVATE_KERAS = ("_inbound_nodes", "_outbound_nodes", "_keras_history", "_flatten_layers",
                 "_operation_nodes", "_nodes_by_depth", "_functional", "_operations",
                 "_inputs_struct", "_outputs_struct", "_trainable_variables",
                 "_non_trainable_variables", "_call_has_training_arg", "_call_signature")


def _modules():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    found["keras_prune_cli"] = ROOT / "keras_prune_cli.py"
    return found


MODULES = _modules()


def _imports(name, path):
    """(module imported, names taken from it) for each import of a package module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                yield (child, []) if child in MODULES else (base, [alias.name])


def _edges():
    edges = {}
    for name, path in MODULES.items():
        targets = set()
        for target, _ in _imports(name, path):
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def _cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycles_and_no_imports_back_up():
    edges = _edges()
    assert _cycles(edges) == []
    upward = [(a, b) for a, targets in edges.items() for b in targets if a.startswith(b + ".")]
    assert upward == []
    assert "keras_prune_cli" not in {b for targets in edges.values() for b in targets} - {
        b for a, targets in edges.items() if a == "keras_prune.__main__" for b in targets}


def test_keras_private_api_is_read_only_under_models():
    readers = []
    for name, path in MODULES.items():
        if name.startswith("keras_prune._models"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_KERAS:
                readers.append(f"{name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in PRIVATE_KERAS:
                readers.append(f"{name}:{node.lineno} {node.value!r}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.startswith("keras.src") for n in names):
                    readers.append(f"{name}:{node.lineno} keras.src")
    assert readers == []


def test_modules_stay_small_and_private_names_stay_home():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert long == {}
    borrowed = [f"{name} takes {taken} from {target}"
                for name, path in MODULES.items()
                for target, names in _imports(name, path) if target.startswith("keras_prune")
                for taken in names if taken.startswith("_") and not taken.startswith("__")
                and f"{target}.{taken}" not in MODULES]
    assert borrowed == []


def test_public_faces_list_sorted_complete_names():
    import keras_prune.structured

    for package in (keras_prune, keras_prune.structured, keras_prune.masking):
        assert package.__all__ == sorted(package.__all__), package.__name__
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert missing == [], package.__name__
    assert not {"cli", "demo"} & set(keras_prune._LAZY_SUBMODULES)
