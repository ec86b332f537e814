import keras
import numpy as np
import pytest

from keras_prune.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule


def _numpy(value):
    return keras.ops.convert_to_numpy(value)


def test_polynomial_decay_follows_zhu_gupta_formula():
    schedule = PolynomialDecay(0.1, 0.9, begin_step=10, end_step=110, power=3, frequency=10)
    for step in [10, 20, 55, 100, 110]:
        p = min(max((step - 10) / 100, 0), 1)
        expected = 0.9 + (0.1 - 0.9) * (1 - p) ** 3
        assert _numpy(schedule(step)[1]) == pytest.approx(expected, abs=1e-6)


def test_polynomial_decay_reaches_final_sparsity_at_end_step_and_stays():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100)
    assert schedule.sparsity_at(100) == pytest.approx(0.8)
    assert schedule.sparsity_at(1000) == pytest.approx(0.8)
    assert not schedule.is_pruning_step(200)


@pytest.mark.parametrize(
    "schedule",
    [
        PolynomialDecay(0.0, 0.5, begin_step=3, end_step=40, frequency=7),
        ConstantSparsity(0.5, begin_step=5, end_step=-1, frequency=4),
        ConstantSparsity(0.5, begin_step=5, end_step=30, frequency=4),
    ],
)
def test_python_should_prune_matches_tensor_rule(schedule):
    for step in range(0, 60):
        expected = step >= schedule.begin_step and (
            step <= schedule.end_step or schedule.end_step == -1
        ) and (step - schedule.begin_step) % schedule.frequency == 0
        assert schedule.is_pruning_step(step) == expected
        assert bool(_numpy(schedule(step)[0])) == expected


def test_default_is_pruning_step_uses_call_for_user_schedules():
    class EveryTen(PruningSchedule):
        def __call__(self, step):
            return keras.ops.equal(keras.ops.mod(step, 10), 0), keras.ops.convert_to_tensor(0.3)

        def get_config(self):
            return {}

    schedule = EveryTen()
    assert schedule.is_pruning_step(20) and not schedule.is_pruning_step(21)
    assert schedule.sparsity_at(20) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(initial_sparsity=0.0, final_sparsity=1.0, begin_step=0, end_step=10), "final_sparsity"),
        (dict(initial_sparsity=-0.1, final_sparsity=0.5, begin_step=0, end_step=10), "initial"),
        (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=10, end_step=5), "end_step"),
        (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=-1, end_step=5), "begin_step"),
        (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=-1), "end_step"),
        (dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=5, frequency=0),
         "frequency"),
    ],
)
def test_polynomial_decay_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PolynomialDecay(**kwargs)


def test_constant_sparsity_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"target_sparsity.*\[0, 1\).*1.5"):
        ConstantSparsity(1.5)
    with pytest.raises(ValueError, match="frequency"):
        ConstantSparsity(0.5, frequency=-3)
    with pytest.raises(TypeError, match="target_sparsity"):
        ConstantSparsity("half")


@pytest.mark.parametrize(
    "schedule",
    [
        PolynomialDecay(0.1, 0.7, begin_step=5, end_step=50, power=2, frequency=3),
        ConstantSparsity(0.4, begin_step=2, end_step=90, frequency=9),
    ],
)
def test_schedule_config_round_trips_every_argument(schedule, helpers):
    restored = helpers.config_round_trip(schedule)
    assert restored == schedule
    serialized = keras.saving.serialize_keras_object(schedule)
    assert keras.saving.deserialize_keras_object(serialized) == schedule


def test_constant_sparsity_keeps_target_constant():
    schedule = ConstantSparsity(0.6, begin_step=0)
    values = [float(_numpy(schedule(s)[1])) for s in (0, 100, 10_000)]
    np.testing.assert_allclose(values, 0.6, rtol=1e-6)


def test_tfmot_serialize_deserialize_returns_a_schedule():
    """tfmot's testSerializeDeserialize: get_config() in tfmot's nested form."""
    import keras

    for schedule in (ConstantSparsity(0.7, 10, 20, 10), PolynomialDecay(0.2, 0.8, 10, 20)):
        config = schedule.get_config()
        assert set(config) == {"class_name", "config"}
        again = keras.utils.deserialize_keras_object(
            config, custom_objects={"ConstantSparsity": ConstantSparsity,
                                    "PolynomialDecay": PolynomialDecay})
        assert again.__dict__ == schedule.__dict__ and again == schedule
        assert hash(again) == hash(schedule) and "target_sparsity" in repr(
            ConstantSparsity(0.5, 0)) 
