"""Every class keras_prune writes into a .keras file, registered with Keras by importing
the module that defines it, so `keras.saving.load_model` finds them all."""

from keras_prune.callbacks import prune_callback  # noqa: F401
from keras_prune.layers import wrapper  # noqa: F401
from keras_prune.quantization import configs, quantizers  # noqa: F401
from keras_prune.quantization import wrapper as quantization_wrapper  # noqa: F401
from keras_prune.schedules import base, constant, fixed, polynomial  # noqa: F401
