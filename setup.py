"""Packaging for keras_prune."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
# One source for the version: keras_prune/__init__.py.
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "keras_prune" / "__init__.py").read_text(), re.M
).group(1)

EXTRAS = {
    "tensorflow": ["tensorflow-cpu>=2.16"],
    "litert": ["ai-edge-litert>=1.0"],
    "tfmot": ["tensorflow-model-optimization>=0.8", "tf-keras>=2.16"],
    "plot": ["matplotlib>=3.5"],
    "demo": ["scikit-learn>=1.2"],  # `keras-prune demo` trains on its bundled digits
    "tensorboard": ["tensorboard>=2.10"],
    "dev": [
        "pytest>=7",
        "scikit-learn>=1.2",
        "mnist1d>=0.0.2",
        "jax>=0.4.20",
        "jaxlib>=0.4.20",
        "torch==2.13.0",
        "nbclient>=0.7",
        "nbformat>=5",
        "ipykernel>=6",
        "keras-hub>=0.20",
    ],
}

setup(
    name="keras-prune",
    version=VERSION,
    description="Neural-network pruning for Keras 3: schedules, masks, structured pruning, TFLite export.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["keras_prune", "keras_prune.*"]),
    py_modules=["keras_prune_cli"],  # the command's front door: parses before Keras loads
    install_requires=["keras>=3.0", "numpy>=1.23"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["keras-prune=keras_prune_cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
