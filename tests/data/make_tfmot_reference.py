"""Per-batch sparsity sequences in tfmot 0.8.1: the reference for test_tfmot_compat.py.

Runs in the tfmot venv (`make .venv-tfmot/.installed`), never in the tests:

    .venv-tfmot/bin/python tests/data/make_tfmot_reference.py > out.json

then wrap the printed dict as {"source": ..., "one_batch_per_fit": ...} in
tests/data/tfmot_reference.json.
"""

import json

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
S = tfmot.sparsity.keras
cases = {
  "poly_0.2_0.6_b1_e4_f1": lambda: S.PolynomialDecay(0.2, 0.6, begin_step=1, end_step=4, power=3, frequency=1),
  "const_0.5_b0_f3": lambda: S.ConstantSparsity(0.5, 0, frequency=3),
  "const_0.5_b0_f100": lambda: S.ConstantSparsity(0.5, 0),
  "poly_0_0.8_b2_e10_f2": lambda: S.PolynomialDecay(0.0, 0.8, begin_step=2, end_step=10, frequency=2),
}
out = {}
for name, make in cases.items():
    n = 102 if "f100" in name else 12
    m = keras.Sequential([keras.layers.Dense(25, input_shape=(20,))])
    p = S.prune_low_magnitude(m, pruning_schedule=make())
    p.compile("sgd", "mse")
    x = np.random.rand(8, 20).astype("float32"); y = np.random.rand(8, 25).astype("float32")
    seq = []
    for _ in range(n):
        p.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[S.UpdatePruningStep()])
        k = p.layers[0].pruning_vars[0][1].numpy()
        seq.append(round(float(1 - k.mean()), 4))
    out[name] = {"sparsity": seq, "pruning_step": int(p.layers[0].pruning_step.numpy())}
# custom-loop recipe
m = keras.Sequential([keras.layers.Dense(25, input_shape=(20,))])
p = S.prune_low_magnitude(m, pruning_schedule=S.ConstantSparsity(0.5, 0, frequency=2))
opt = keras.optimizers.SGD()
cb = S.UpdatePruningStep(); cb.set_model(p); cb.on_train_begin()
seq = []
x = np.random.rand(8, 20).astype("float32"); y = np.random.rand(8, 25).astype("float32")
for epoch in range(2):
    for b in range(3):
        cb.on_train_batch_begin(batch=-1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((p(x, training=True) - y) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, p.trainable_variables), p.trainable_variables))
        seq.append(round(float(1 - p.layers[0].pruning_vars[0][1].numpy().mean()), 4))
    cb.on_epoch_end(batch=-1)
out["custom_loop_const_0.5_f2"] = {"sparsity": seq, "pruning_step": int(p.layers[0].pruning_step.numpy())}
print(json.dumps(out))
