"""The shape of a model: its type, layer sizes, one activation per layer, and its loss.

Logistic regression is one layer with a sigmoid, linear regression one with the identity,
softmax regression one with a softmax; an MLP nests several. ``MODEL_TYPES`` registers each type
by the name the API exposes, with the output layer it implies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.activations import get_activation, resolve_params
from engine.losses import LOSSES, get_loss, loss_for_output


@dataclass(frozen=True)
class ModelType:
    """A model type and the output layer it implies.

    Attributes
    ----------
    name : str
        The name in the API.
    output : str or None
        The output layer's activation; None when the caller chooses it (mlp).
    min_outputs, max_outputs : int, int or None
        How many output units the type allows (None: no upper bound).
    hidden_layers : bool
        Whether the type takes hidden layers.
    """

    name: str
    output: str | None
    min_outputs: int = 1
    max_outputs: int | None = None
    hidden_layers: bool = False


MODEL_TYPES: dict[str, ModelType] = {
    m.name: m
    for m in [
        ModelType("logistic_regression", "sigmoid", max_outputs=1),
        ModelType("linear_regression", "identity"),
        ModelType("softmax_regression", "softmax", min_outputs=2),
        ModelType("mlp", None, hidden_layers=True),
    ]
}


def get_model_type(name: str) -> ModelType:
    """Look up a model type by its API name; ValueError lists the allowed names."""
    try:
        return MODEL_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown model type {name!r}; allowed: {', '.join(MODEL_TYPES)}") from None


@dataclass(frozen=True)
class Architecture:
    """The shape of a model: layer sizes, one activation per layer, and its loss.

    Attributes
    ----------
    kind : str
        A key of ``MODEL_TYPES``.
    layer_sizes : tuple of int
        ``(n_features, hidden_1, ..., n_outputs)``.
    activations : tuple of str
        One activation name per layer, ``len(layer_sizes) - 1`` of them.
    loss : str
        A key of ``engine.losses.LOSSES``.
    activation_params : tuple of dict
        Each layer's activation parameters (such as leaky_relu's ``alpha``), defaults filled in;
        empty, or omitted, for the defaults of every layer.
    """

    kind: str
    layer_sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    activation_params: tuple[Mapping[str, float], ...] = ()

    def __post_init__(self) -> None:
        get_model_type(self.kind)
        if len(self.layer_sizes) < 2 or any(int(s) < 1 for s in self.layer_sizes):
            raise ValueError(f"layer sizes must be positive, got {list(self.layer_sizes)}")
        if len(self.activations) != len(self.layer_sizes) - 1:
            raise ValueError(
                f"{len(self.layer_sizes) - 1} layers need as many activations, got {len(self.activations)}"
            )
        for name in self.activations:
            get_activation(name)
        if "softmax" in self.activations[:-1]:
            raise ValueError("softmax is only allowed as the last layer's activation")
        get_loss(self.loss)
        given = self.activation_params or ({},) * len(self.activations)
        if len(given) != len(self.activations):
            raise ValueError(
                f"{len(self.activations)} layers need as many activation parameter sets, got {len(given)}"
            )
        resolved = tuple(resolve_params(name, p) for name, p in zip(self.activations, given, strict=True))
        object.__setattr__(self, "activation_params", resolved)

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The (fan_in, fan_out) shape of each layer's weight matrix."""
        return list(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))

    @property
    def n_parameters(self) -> int:
        return sum(i * o + o for i, o in self.shapes)

    @property
    def is_classifier(self) -> bool:
        return LOSSES[self.loss].is_classification


def build_architecture(
    kind: str,
    n_features: int,
    n_outputs: int = 1,
    *,
    hidden_layers: Sequence[int] = (),
    activation: str | Sequence[str] = "relu",
    output_activation: str | None = None,
    loss: str | None = None,
    activation_params: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
    output_params: Mapping[str, float] | None = None,
) -> Architecture:
    """Build the architecture of a model type.

    Parameters
    ----------
    kind : str
        A key of ``MODEL_TYPES``: logistic_regression, linear_regression, softmax_regression or mlp.
    n_features : int
    n_outputs : int
        Classes for softmax output, otherwise output units (1 for logistic regression).
    hidden_layers : sequence of int
        Units of each hidden layer (MLP only).
    activation : str or sequence of str
        Hidden-layer activation, or one per hidden layer (MLP only).
    output_activation : str, optional
        The output layer's activation (MLP only; default identity).
    loss : str, optional
        Defaults to the loss the output activation pairs with.
    activation_params : mapping or sequence of mappings, optional
        Parameters of the hidden activations (such as ``{"alpha": 0.1}`` for leaky_relu), for every
        hidden layer or one mapping per hidden layer (MLP only).
    output_params : mapping, optional
        Parameters of the output activation.

    Returns
    -------
    Architecture
    """
    model = get_model_type(kind)
    hidden = [int(h) for h in hidden_layers]
    if not model.hidden_layers and hidden:
        raise ValueError(f"hidden_layers are for mlp models, got {hidden} for {kind}")
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden_layers must be positive, got {hidden}")
    if model.max_outputs is not None:
        n_outputs = min(n_outputs, model.max_outputs)
    if model.min_outputs > 1 and n_outputs < model.min_outputs:
        raise ValueError(f"{kind} needs at least {model.min_outputs} classes, got {n_outputs}")
    out_act = model.output or output_activation or "identity"
    hidden_acts = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    if len(hidden_acts) != len(hidden):
        raise ValueError(f"{len(hidden)} hidden layers need as many activations, got {len(hidden_acts)}")
    if activation_params is None or isinstance(activation_params, Mapping):
        hidden_params = [activation_params or {}] * len(hidden)
    else:
        hidden_params = list(activation_params)
    if len(hidden_params) != len(hidden):
        raise ValueError(
            f"{len(hidden)} hidden layers need as many activation parameter sets, got {len(hidden_params)}"
        )
    return Architecture(
        kind,
        (int(n_features), *hidden, int(n_outputs)),
        (*hidden_acts, out_act),
        loss or loss_for_output(out_act),
        (*hidden_params, output_params or {}),
    )
