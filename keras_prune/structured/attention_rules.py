"""Rules for Keras' attention layers: heads are a group of their own."""

import numpy as np

from keras_prune.structured.rules import Rule, quantized_problem, to_numpy


class MultiHeadAttentionRule(Rule):
    """Heads are a group of their own; query/key/value widths follow their inputs.

    The output projection writes the query's width, so the attention output is
    tied to the query channels; with `output_shape=n` it writes n channels of its own.
    """

    def unsupported(self, layer, step):
        shape = layer._output_shape
        if shape is not None and len(shape) != 1:
            return f"sets a multi-axis output_shape {shape}"
        if any(len(t.shape) != 3 for t in step.inputs[:1]):
            return "attends over more than one axis"
        return quantized_problem(layer)

    @staticmethod
    def _qvk(step, inputs):
        arguments = step.node.arguments
        args, kwargs = list(arguments.args), arguments.kwargs
        names = ("query", "value", "key")
        tensors = [args[i] if i < len(args) else kwargs.get(name) for i, name in enumerate(names)]
        tensors[2] = tensors[2] if tensors[2] is not None else tensors[1]
        index = {id(t): i for i, t in enumerate(step.node.input_tensors)}
        return [inputs[index[id(t)]] for t in tensors]

    def _head_count(self, layer):
        return layer.num_heads

    def trace(self, graph, layer, step, inputs):
        query, value, key = self._qvk(step, inputs)
        graph.layer_inputs[id(layer)] = [query, value, key]
        graph.new_space(layer, self._head_count(layer), "heads")
        output = query
        if getattr(layer, "_output_shape", None):
            output = graph.new_space(layer, layer._output_shape[0], "units").ids
        return [output] + [np.zeros(0, dtype=np.int64)] * (len(step.outputs) - 1)

    @staticmethod
    def _dense(layer):
        return [layer._query_dense, layer._key_dense, layer._value_dense, layer._output_dense]

    def _output_keep(self, layer, query, spaces, keep):
        if "units" in spaces:
            return keep(spaces["units"].ids)
        return keep(query)

    def _head_masks(self, layer, heads):
        """(query heads kept, key/value heads kept) from the kept entries of the heads space."""
        return heads, heads

    def shrink(self, layer, config, inputs, spaces, keep, read=to_numpy):
        query, value, key = inputs
        heads = keep(spaces["heads"].ids)
        query_heads, kv_heads = self._head_masks(layer, heads)
        out_keep = self._output_keep(layer, query, spaces, keep)
        new = {}
        for dense, width, kept in zip(self._dense(layer)[:3], (query, key, value),
                                      (query_heads, kv_heads, kv_heads)):
            new[id(dense.kernel)] = read(dense.kernel)[keep(width)][:, kept]
            if dense.bias is not None:
                new[id(dense.bias)] = read(dense.bias)[kept]
        gate = getattr(layer, "_gate_dense", None)
        if gate is not None:
            new[id(gate.kernel)] = read(gate.kernel)[keep(query)][:, query_heads]
            if gate.bias is not None:
                new[id(gate.bias)] = read(gate.bias)[query_heads]
        out = layer._output_dense
        new[id(out.kernel)] = read(out.kernel)[query_heads][..., out_keep]
        if out.bias is not None:
            new[id(out.bias)] = read(out.bias)[out_keep]
        return self._config(layer, config, query_heads, kv_heads, out_keep), new

    def _config(self, layer, config, query_heads, kv_heads, out_keep):
        config = {**config, "num_heads": int(query_heads.sum())}
        if layer._output_shape:
            config["output_shape"] = (int(out_keep.sum()),)
        return config

    def _per_head_rows(self, layer, read):
        q, k, v, out = (read(dense.kernel) for dense in self._dense(layer))
        heads = layer.num_heads
        per_head = [np.moveaxis(w, 1, 0).reshape(heads, -1) for w in (q, k, v)]
        per_head.append(out.reshape(heads, -1))
        return np.concatenate(per_head, axis=1)

    def channel_weights(self, layer, inputs, spaces, read=to_numpy):
        out = read(layer._output_dense.kernel)
        rows = np.moveaxis(out, -1, 0).reshape(out.shape[-1], -1)
        writes = spaces["units"].ids if "units" in spaces else inputs[0]
        return [(spaces["heads"].ids, self._per_head_rows(layer, read)), (writes, rows)]


class GroupQueryAttentionRule(MultiHeadAttentionRule):
    """Whole key/value groups go with their query heads, so the layer stays valid GQA.

    With a single key/value head (multi-query attention) query heads go instead.
    """

    def unsupported(self, layer, step):
        if any(len(t.shape) != 3 for t in step.inputs[:1]):
            return "attends over more than one axis"
        return quantized_problem(layer)

    def _head_count(self, layer):
        kv = layer.num_key_value_heads
        return kv if kv > 1 else layer.num_query_heads

    def _head_masks(self, layer, heads):
        if layer.num_key_value_heads == 1:
            return heads, np.ones(1, dtype=bool)
        return np.repeat(heads, layer.num_repeats), heads  # query head i reads group i // r

    def _config(self, layer, config, query_heads, kv_heads, out_keep):
        return {**config, "num_query_heads": int(query_heads.sum()),
                "num_key_value_heads": int(kv_heads.sum())}

    def _per_head_rows(self, layer, read):
        q, k, v, out = (read(dense.kernel) for dense in self._dense(layer))
        groups = self._head_count(layer)
        query = np.concatenate([np.moveaxis(q, 1, 0).reshape(groups, -1),
                                out.reshape(groups, -1)], axis=1)
        if layer.num_key_value_heads == 1:
            return query
        kv = [np.moveaxis(w, 1, 0).reshape(groups, -1) for w in (k, v)]
        return np.concatenate([query] + kv, axis=1)


MULTI_HEAD_ATTENTION = MultiHeadAttentionRule()
GROUP_QUERY_ATTENTION = GroupQueryAttentionRule()
