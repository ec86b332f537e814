"""File handling: atomic writes (a temp file in the target folder, then a rename) and
reading .keras files with errors that say what the file is."""

import contextlib
import json
import os
import tempfile
import zipfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; renames it onto `path` on success.

    On any error the temporary file is removed and an existing `path` is untouched.
    The temporary name keeps the extension of `path` (Keras checks `.keras`).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, extension = os.path.splitext(os.path.basename(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{extension}", dir=folder)
    os.close(handle)
    os.remove(temporary)  # writers such as model.save() want to create the file
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_model(model, path):
    """`model.save(path)`, atomically."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def write_json(data, path):
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")


def write_text(text, path):
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)


def load_keras_file(path, argument="model"):
    """The model in a .keras file, or a ValueError/FileNotFoundError saying what is wrong."""
    import keras

    from keras_prune import _serializable  # noqa: F401 (registers the classes for loading)

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Argument `{argument}`: no such file: {path!r}.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            head = handle.read(8)
        what = ("a .tflite file (TFLite flatbuffer); this needs the Keras model it came from"
                if head[4:8] == b"TFL3" else "not a zip archive (it may be truncated or corrupt)")
        raise ValueError(
            f"Argument `{argument}`: {path!r} is not a .keras file: {what}. A .keras file "
            "is the zip archive that model.save('model.keras') writes."
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 (Keras raises many kinds for a bad archive)
        raise ValueError(
            f"Argument `{argument}`: {path!r} could not be loaded as a Keras model: {error}"
        ) from None
