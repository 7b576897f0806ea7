import pytest

from engine.architecture import MODEL_TYPES, Architecture, build_architecture


def test_registry_keys_each_model_type_by_its_name():
    assert list(MODEL_TYPES) == ["logistic_regression", "linear_regression", "softmax_regression", "mlp"]
    assert all(model.name == name for name, model in MODEL_TYPES.items())


@pytest.mark.parametrize("kind", ["logistic_regression", "linear_regression", "softmax_regression"])
def test_single_layer_types_have_the_output_their_entry_names(kind):
    assert build_architecture(kind, 3, 2).activations == (MODEL_TYPES[kind].output,)


# --- architecture --------------------------------------------------------------------------------


def test_default_loss_follows_the_output_activation():
    assert build_architecture("logistic_regression", 3).loss == "binary_cross_entropy"
    assert build_architecture("softmax_regression", 3, 4).loss == "cross_entropy"
    assert build_architecture("linear_regression", 3).loss == "mean_squared_error"
    assert build_architecture("mlp", 3, 1, hidden_layers=[4]).loss == "mean_squared_error"
    assert build_architecture("mlp", 3, 1, hidden_layers=[4], output_activation="sigmoid").is_classifier
    arch = build_architecture("mlp", 3, 2, hidden_layers=[4, 5], activation=["tanh", "relu"])
    assert arch.layer_sizes == (3, 4, 5, 2)
    assert arch.activations == ("tanh", "relu", "identity")
    assert arch.shapes == [(3, 4), (4, 5), (5, 2)]
    assert build_architecture("logistic_regression", 3, 5).n_outputs == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: build_architecture("mlp", 3, hidden_layers=[4], activation="softmax"),
            "only allowed as the last",
        ),
        (
            lambda: Architecture("mlp", (3, 4, 2), ("softmax", "identity"), "mean_squared_error"),
            "only allowed as the last",
        ),
        (
            lambda: build_architecture("mlp", 3, hidden_layers=[4], activation="swish"),
            r"unknown activation 'swish'; allowed: .*relu",
        ),
        (
            lambda: build_architecture("mlp", 3, hidden_layers=[4], output_activation="swish"),
            "unknown activation 'swish'",
        ),
        (
            lambda: build_architecture("mlp", 3, hidden_layers=[4], loss="hinge"),
            r"unknown loss 'hinge'; allowed: .*cross_entropy",
        ),
        (lambda: build_architecture("perceptron", 3), r"unknown model type 'perceptron'; allowed: .*mlp"),
        (
            lambda: Architecture("perceptron", (3, 1), ("sigmoid",), "binary_cross_entropy"),
            "unknown model type",
        ),
        (
            lambda: build_architecture("mlp", 3, hidden_layers=[16, 0]),
            r"hidden_layers must be positive, got \[16, 0\]",
        ),
        (
            lambda: build_architecture("mlp", 3, hidden_layers=[-2]),
            r"hidden_layers must be positive, got \[-2\]",
        ),
        (lambda: build_architecture("linear_regression", 0), r"layer sizes must be positive, got \[0, 1\]"),
        (
            lambda: build_architecture("mlp", 3, 0, hidden_layers=[4]),
            r"layer sizes must be positive, got \[3, 4, 0\]",
        ),
        (lambda: Architecture("mlp", (3,), (), "mean_squared_error"), "layer sizes must be positive"),
        (
            lambda: build_architecture("logistic_regression", 3, hidden_layers=[4]),
            r"hidden_layers are for mlp models, got \[4\]",
        ),
        (lambda: build_architecture("softmax_regression", 3, 1), "at least 2 classes, got 1"),
        (
            lambda: build_architecture("mlp", 3, hidden_layers=[4, 4], activation=["relu"]),
            "2 hidden layers need as many activations, got 1",
        ),
        (
            lambda: Architecture("mlp", (3, 4, 1), ("relu",), "mean_squared_error"),
            "2 layers need as many activations, got 1",
        ),
    ],
)
def test_invalid_architecture_raises_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()
