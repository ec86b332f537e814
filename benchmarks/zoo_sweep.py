"""The zoo sweep: every model built from a tiny config, pruned as users would prune it.

Models: keras.applications (weights=None, 32x32) and the keras_hub backbones this
project builds from tiny configs (the tests' configs: text transformers, vision
transformers, CNN backbones, Swin, SegFormer, RWKV7, Moonshine, ...), random weights.
For each one:

- structured: `prune_structured(model, 0.5)`; does it shrink (params ratio), keep its
  class, and reload from .keras computing the same outputs? or the refusal's first line;
- unstructured: `prune_low_magnitude` (ConstantSparsity 0.5, one fit step), strip;
  class kept and reload equal;
- one-shot (keras_hub models): `prune_one_shot(model, sample, 0.5)` runs, or its error.

    python benchmarks/zoo_sweep.py [--only Bert,ResNet]

Writes benchmarks/results/zoo_sweep.md (and .json). Never part of `make test`.
"""

import argparse
import os
import sys
import tempfile
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune._io import write_json, write_text  # noqa: E402
from keras_prune.schedules import ConstantSparsity  # noqa: E402

from _results import with_earlier_rows  # noqa: E402  (benchmarks/_results.py)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


# Tiny values for the constructor arguments keras_hub backbones share; every Backbone
# whose required arguments are all here is built with them (`_auto`).
TINY = dict(vocabulary_size=50, vocab_size=50, num_layers=2, num_heads=2, num_query_heads=2,
            num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, max_sequence_length=16,
            head_dim=8, head_size=8, embedding_dim=16, num_groups=1, num_inner_repetitions=1,
            num_experts=4, top_k=2, moe_intermediate_dim=16, shared_expert_intermediate_dim=16,
            shared_expert_intermediate_size=16, encoder_num_layers=1, decoder_num_layers=1,
            image_shape=(32, 32, 3), patch_size=4, mlp_dim=32, num_attention_heads=2,
            filter_dim=16, encoder_num_heads=2, decoder_num_heads=2, dropout=0.0,
            global_attention_layer_indices=[1], image_size=32)


def _auto(cls):
    import inspect

    params = inspect.signature(cls.__init__).parameters
    required = [name for name, p in params.items() if name not in ("self", "args", "kwargs")
                and p.default is inspect.Parameter.empty and p.kind != p.VAR_KEYWORD]
    if any(name not in TINY for name in required):
        return None
    kwargs = {name: TINY[name] for name in required}
    for name in ("dropout", "max_sequence_length", "image_shape"):
        if name in params and name not in kwargs:
            kwargs[name] = TINY[name]
    return lambda: cls(**kwargs)


def _extra(M):
    """Tiny configs of keras_hub families whose constructors take per-stage lists."""
    from tests.structured import test_hub_stages

    image = test_hub_stages.IMAGE
    return {
        "CSPNetBackbone": test_hub_stages.CSPNET,
        "MobileNetBackbone": test_hub_stages.MOBILENET,
        # keras_hub's docstring example (RMS normalization, edge and universal blocks)
        "MobileNetV5Backbone": lambda: M.MobileNetV5Backbone(
            stackwise_block_types=[["er"], ["uir", "uir"]], stackwise_num_blocks=[1, 2],
            stackwise_num_filters=[[24], [48, 48]], stackwise_strides=[[2], [2, 1]],
            stackwise_act_layers=[["relu"], ["relu", "relu"]],
            stackwise_exp_ratios=[[4.0], [6.0, 6.0]], stackwise_se_ratios=[[0.0], [0.0, 0.0]],
            stackwise_dw_kernel_sizes=[[0], [5, 5]],
            stackwise_dw_start_kernel_sizes=[[0], [0, 0]],
            stackwise_dw_end_kernel_sizes=[[0], [0, 0]],
            stackwise_exp_kernel_sizes=[[3], [0, 0]], stackwise_pw_kernel_sizes=[[1], [0, 0]],
            stackwise_num_heads=[[0], [0, 0]], stackwise_key_dims=[[0], [0, 0]],
            stackwise_value_dims=[[0], [0, 0]], stackwise_kv_strides=[[0], [0, 0]],
            stackwise_use_cpe=[[False], [False, False]], use_msfa=False, image_shape=image),
        "HGNetV2Backbone": lambda: M.HGNetV2Backbone(
            embedding_size=32, stem_channels=[3, 16, 32], hidden_act="relu",
            use_learnable_affine_block=False, image_shape=image, depths=[1, 1],
            hidden_sizes=[64, 128], stackwise_stage_filters=[[32, 16, 64, 1, 1, 3],
                                                             [64, 32, 128, 1, 1, 3]],
            apply_downsample=[False, True], use_lightweight_conv_block=[False, False]),
        "MiTBackbone": lambda: M.MiTBackbone(
            layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
            layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0, layerwise_patch_sizes=[7, 3],
            layerwise_strides=[4, 2], image_shape=image, hidden_dims=[8, 16]),
    }


def _more(M):
    """Tiny configs of keras_hub families whose constructors take sub-models or
    prefixed fields (encoder_*, vit_*)."""
    import keras_hub

    from tests.structured import test_hub_layouts, test_hub_stages

    resnet = test_hub_stages.BACKBONES["ResNet"]
    smol = dict(vocabulary_size=50, hidden_dim=16, intermediate_dim=32, num_layers=2,
                num_attention_heads=2, num_key_value_heads=1, attention_bias=False,
                attention_dropout=0.0, rope_layer_enabled_list=[True, True],
                layer_types=["attention", "attention"], mlp_bias=False,
                layer_norm_epsilon=1e-6, max_position_embeddings=32, rope_theta=10000.0,
                partial_rotary_factor=1.0)
    half = dict(hidden_dim=16, intermediate_dim=32, num_layers=1, num_attention_heads=2,
                num_key_value_heads=1, head_dim=8, layer_types=["full_attention"])
    found = {f"{name}Backbone": make for name, make in test_hub_layouts.TOWERS.items()}
    found.update({
        "MetaCLIP2Backbone": lambda: M.MetaCLIP2Backbone(
            M.MetaCLIP2VisionEncoder(**test_hub_layouts.VISION),
            M.MetaCLIP2TextEncoder(**test_hub_layouts.WORDS), projection_dim=8),
        "DepthAnythingBackbone": lambda: M.DepthAnythingBackbone(
            M.DINOV2Backbone(patch_size=4, num_layers=4, hidden_dim=16, num_heads=2,
                             intermediate_dim=32, image_shape=(32, 32, 3),
                             position_embedding_shape=(32, 32, 3), apply_layernorm=True),
            reassemble_factors=[4, 2, 1, 0.5], neck_hidden_dims=[8, 8, 8, 8],
            fusion_hidden_dim=8, head_hidden_dim=8, head_in_index=-1,
            feature_keys=["stage1", "stage2", "stage3", "stage4"]),
        "ViTDetBackbone": lambda: M.ViTDetBackbone(
            hidden_size=16, num_layers=2, intermediate_dim=32, num_heads=2,
            global_attention_layer_indices=[1], image_shape=(32, 32, 3), patch_size=4,
            num_output_channels=8, window_size=2),
        "SmolLMBackbone": lambda: M.SmolLMBackbone(**smol),
        "SmolLM3Backbone": lambda: M.SmolLM3Backbone(**smol),
        "T5GemmaBackbone": lambda: M.T5GemmaBackbone(
            vocabulary_size=50, **{f"encoder_{k}": v for k, v in half.items()},
            **{f"decoder_{k}": v for k, v in half.items()}),
        "EdRecBackbone": lambda: M.EdRecBackbone(vocab_size=50, num_layers_enc=1,
                                                 num_layers_dec=1, hidden_dim=16,
                                                 intermediate_dim=32, num_heads=2),
        "PaliGemmaBackbone": lambda: M.PaliGemmaBackbone(
            vocabulary_size=50, image_size=16, num_layers=2, num_query_heads=2,
            num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, head_dim=8,
            vit_patch_size=4, vit_num_heads=2, vit_hidden_dim=16, vit_num_layers=2,
            vit_intermediate_dim=32),
        "VideoPrismBackbone": lambda: M.VideoPrismBackbone(
            num_frames=2, patch_size=4, hidden_dim=16, intermediate_dim=32, num_heads=2,
            num_spatial_layers=1, num_temporal_layers=1, num_auxiliary_layers=0,
            image_shape=(16, 16, 3)),
        "DeepLabV3Backbone": lambda: M.DeepLabV3Backbone(
            image_encoder=resnet(), spatial_pyramid_pooling_key="P3", upsampling_size=8,
            dilation_rates=[1, 2], image_shape=(32, 32, 3)),
        "RetinaNetBackbone": lambda: M.RetinaNetBackbone(
            image_encoder=resnet(), min_level=3, max_level=4, use_p5=False,
            image_shape=(32, 32, 3)),
        "BASNetBackbone": lambda: M.BASNetBackbone(
            image_encoder=M.ResNetBackbone(
                input_conv_filters=[64], input_conv_kernel_sizes=[7],
                stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[1, 1, 1, 1],
                stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block"),
            num_classes=1, image_shape=(64, 64, 3)),
    })
    del keras_hub
    return found


def models():
    """{name: (family, constructor)}: the test suite's tiny configs, then every other
    keras_hub Backbone that builds from the shared tiny arguments."""
    import keras_hub

    from tests import test_zoo
    from tests.structured import test_hub_stages, test_transformers

    found = {name: ("keras.applications", make) for name, make in test_zoo.APPLICATIONS.items()}
    for name, (make, _) in test_transformers.FAMILIES.items():
        found[f"{name}Backbone"] = ("keras_hub transformer", make)
    for name, make in {**test_zoo._hub_backbones(), **test_zoo._hub_families()}.items():
        found.setdefault(name, ("keras_hub", make))
    for name, make in test_hub_stages.BACKBONES.items():
        found[f"{name}Backbone"] = ("keras_hub CNN", make)
    for name, make in _extra(keras_hub.models).items():
        found[name] = ("keras_hub CNN", make)
    for name, make in _more(keras_hub.models).items():
        found[name] = ("keras_hub (sub-models, prefixed fields)", make)
    for name in sorted(dir(keras_hub.models)):
        if name.endswith("Backbone") and name != "Backbone" and name not in found:
            make = _auto(getattr(keras_hub.models, name))
            found[name] = ("keras_hub (auto config)", make) if make else (
                "keras_hub (no tiny config here)", None)
    return found


def _family_sample(name, model):
    """The tests' random inputs (Moonshine's own audio), 4 samples, sequences <= 16."""
    from tests import test_zoo

    if name == "MoonshineBackbone":
        return test_zoo._family_sample(name, model)
    length = min(16, model.get_config().get("max_sequence_length") or 16)
    return test_zoo._sample(model, batch=4, length=length)


def _first(outputs):
    return keras.ops.convert_to_numpy(keras.tree.flatten(outputs)[0]).astype(np.float64)


def _reload_equal(model, x, folder):
    path = os.path.join(folder, "model.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    same = np.allclose(_first(again(x)), _first(model(x)), rtol=1e-4, atol=1e-4,
                       equal_nan=True)
    return type(again) is type(model), same


def _error(error):
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:160]}"


def structured_row(model, x, folder):
    try:
        smaller, _ = keras_prune.structured.prune_structured(model, 0.5, verbose=0)
    except Exception as error:  # noqa: BLE001 (the sweep records every outcome)
        return dict(structured=_error(error))
    class_kept = type(smaller) is type(model)
    try:
        reloaded_class, same = _reload_equal(smaller, x, folder)
    except Exception as error:  # noqa: BLE001
        return dict(structured_ratio=smaller.count_params() / model.count_params(),
                    structured=f"reload failed: {_error(error)}")
    ratio = smaller.count_params() / model.count_params()
    ok = ratio < 0.999 and class_kept and reloaded_class and same
    return dict(structured_ratio=ratio, structured="ok" if ok else
                f"ratio {ratio:.3f}, class kept {class_kept}, reload class {reloaded_class}, "
                f"equal {same}", litert=_litert(model, smaller, x) if ok else "")


def _converts(model, x):
    """None when `model` converts to float LiteRT and verifies on `x`, else why not."""
    from keras_prune import tflite

    shapes = ({name: tuple(value.shape[1:]) for name, value in x.items()}
              if isinstance(x, dict) else None)
    data = [x[t.name] for t in model.inputs] if isinstance(x, dict) else x
    try:
        result = tflite.convert(model, None, input_shapes=shapes, verify_data=data, verbose=0)
    except Exception as error:  # noqa: BLE001 (the sweep records every outcome)
        return _error(error)
    return None if result.verification is None or result.verification.passed else (
        f"verification failed (max |diff| {result.verification.max_abs_diff:.2g})")


def _litert(model, smaller, x):
    """Does the pruned model convert and verify where the dense one does?"""
    dense = _converts(model, x)
    if dense is not None:
        return f"dense does not convert either ({dense[:80]})"
    pruned = _converts(smaller, x)
    return "converts, verified" if pruned is None else f"pruned: {pruned[:100]}"


def unstructured_row(model, x, folder):
    try:
        pruned = keras_prune.prune_low_magnitude(
            model, pruning_schedule=ConstantSparsity(0.5, 0, frequency=1))
        targets = keras.tree.map_structure(lambda o: np.zeros(o.shape, "float32"), model(x))
        pruned.compile(keras.optimizers.SGD(1e-4), "mse", run_eagerly=True)
        import tensorflow as tf  # one batch as is: SAM's outputs are not per input sample

        pruned.fit(tf.data.Dataset.from_tensors((x, targets)), epochs=1, verbose=0,
                   callbacks=[keras_prune.callbacks.PruneCallback()])
        stripped = keras_prune.strip_pruning(pruned)
        reloaded_class, same = _reload_equal(stripped, x, folder)
        ok = type(stripped) is type(model) and reloaded_class and same
        return dict(unstructured="ok" if ok else
                    f"class kept {type(stripped) is type(model)}, reload class "
                    f"{reloaded_class}, equal {same}")
    except Exception as error:  # noqa: BLE001
        return dict(unstructured=_error(error))


def one_shot_row(model, x):
    if model.count_params() > 20_000_000:  # BASNet's fixed heads: SparseGPT takes many minutes
        return dict(one_shot=f"not run ({model.count_params() / 1e6:.0f}M parameters)")
    try:
        _, report = keras_prune.prune_one_shot(model, x, 0.5, verbose=0)
        return dict(one_shot=f"ok ({report.sparsity:.2f} of {len(report.layers)} kernels)")
    except Exception as error:  # noqa: BLE001
        return dict(one_shot=_error(error))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated model names")
    args = parser.parse_args(argv)
    rows = []
    for name, (family, make) in sorted(models().items(), key=lambda kv: (kv[1][0], kv[0])):
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        start = time.perf_counter()
        keras.utils.set_random_seed(0)
        row = dict(model=name, family=family)
        if make is None:
            row["build"] = "no tiny config in this sweep"
            rows.append(row)
            continue
        try:
            model = make()
            x = _family_sample(name, model)
        except Exception as error:  # noqa: BLE001
            row["build"] = _error(error)
            rows.append(row)
            continue
        with tempfile.TemporaryDirectory() as folder:
            row.update(structured_row(model, x, folder))
            row.update(unstructured_row(model, x, folder))
        if family != "keras.applications":
            row.update(one_shot_row(model, x))
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        print(row, flush=True)
    path = os.path.join(RESULTS, "zoo_sweep.json")
    if args.only:  # rerun some rows, keep the others
        rows = sorted(with_earlier_rows(path, rows, "model"),
                      key=lambda r: (r["family"], r["model"]))
    lines = ["| family | model | structured 0.5 | params | LiteRT (dense, then pruned) | "
             "unstructured | one-shot |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r.get("structured_ratio")
        lines.append(f"| {r['family']} | {r['model']} | {r.get('structured', r.get('build'))} | "
                     f"{'' if ratio is None else f'{ratio:.3f}'} | {r.get('litert', '')} | "
                     f"{r.get('unstructured', '')} | {r.get('one_shot', '')} |")
    shrunk = sum(1 for r in rows if r.get("structured") == "ok")
    unstructured = sum(1 for r in rows if r.get("unstructured") == "ok")
    verified = sum(1 for r in rows if r.get("litert") == "converts, verified")
    dense_fails = sum(1 for r in rows if str(r.get("litert", "")).startswith("dense does not"))
    summary = (f"{len(rows)} models: structured ratio 0.5 shrinks, keeps the class and reloads "
               f"equal on {shrunk} (of which the pruned model converts to LiteRT and verifies "
               f"on {verified}; the dense model itself does not convert on {dense_fails}); "
               f"unstructured prune/fit/strip keeps the class and reloads equal on "
               f"{unstructured}.")
    os.makedirs(RESULTS, exist_ok=True)
    write_json(rows, path)
    write_text("# Zoo sweep\n\n" + summary + "\n\n" + "\n".join(lines) + "\n",
               os.path.join(RESULTS, "zoo_sweep.md"))
    print(summary)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(1)
