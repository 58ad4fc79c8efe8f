"""PyTorch: ``nn.Linear`` layers, ``torch.optim``, autograd, an eager loop.

torch keeps ``Linear.weight`` as ``(n_out, n_in)``; conversions go through
``harness.run.layout``. Parameters are recorded in the reference layout.
"""
from __future__ import annotations

import importlib
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.run.adapters.protocol import Params, check_expressible, missing
from harness.run.layout import from_torch, to_torch
from harness.run.plan import TrainingPlan
from harness.run.threads import framework_threads
from harness.run.trajectory import RowIds, Trajectory, dtype_names, should_stop
from harness.spec.conventions import native
from harness.spec.scenario import OptimizerSpec, Scenario
from reference.losses import KERAS_EPSILON, TORCH_LOG_FLOOR
from reference.network import bias_name, kernel_name
from reference.optimizers import hyperparameters


def _activation(torch, name: str, axis: int):
    nn = torch.nn
    if name == "linear":
        return nn.Identity()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "softmax":
        return nn.Softmax(dim=axis)
    if name == "exponential":
        # torch has no exponential activation module: a Module whose forward is torch.exp
        exponential = type("Exponential", (nn.Module,), {"forward": lambda self, z: torch.exp(z)})
        return exponential()
    raise ValueError(f"no torch activation for {name!r}")


def build_model(torch, scenario, dtype):
    modules, linears, n_in = [], [], scenario.input_dim
    for spec in scenario.layers:
        linear = torch.nn.Linear(n_in, spec.units, bias=spec.use_bias, dtype=dtype)
        modules += [linear, _activation(torch, spec.activation, spec.axis)]
        linears.append(linear)
        n_in = spec.units
    return torch.nn.Sequential(*modules), linears


def named_parameters(linears) -> list[tuple[str, Any]]:
    out = []
    for i, linear in enumerate(linears):
        out.append((kernel_name(i), linear.weight))
        if linear.bias is not None:
            out.append((bias_name(i), linear.bias))
    return out


def set_params(torch, linears, params: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        for name, p in named_parameters(linears):
            p.copy_(torch.from_numpy(to_torch(name, params[name])))


def build_optimizer(torch, spec: OptimizerSpec, parameters, *, file: str | Path = "<scenario>"):
    """torch's own optimizer class with every hyper-parameter explicit (omitted options at torch's
    defaults, Keras' option names mapped to torch's), and the convention it computes. A spec
    pinning the Keras convention where it differs is a ``BadInput``: torch only runs ``torch.optim.*``.

    ``foreach=False`` (and ``fused=False``): the single-tensor loop, whose arithmetic the reference
    writes out (the multi-tensor path orders Adam's bias corrections differently; it is the
    default only on GPUs).
    """
    if spec.name not in ("sgd", "adam", "rmsprop"):
        raise ValueError(f"no torch optimizer for {spec.name!r}")
    check_expressible(ADAPTER, spec, file=file)
    h = hyperparameters(spec, convention="torch")
    lr, off = h["learning_rate"], dict(weight_decay=0.0, maximize=False, foreach=False, differentiable=False)
    if spec.name == "sgd":
        optimizer = torch.optim.SGD(parameters, lr=lr, momentum=h["momentum"], dampening=0.0,
                                    nesterov=h["nesterov"], fused=False, **off)
    elif spec.name == "adam":
        optimizer = torch.optim.Adam(parameters, lr=lr, betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"],
                                     amsgrad=h["amsgrad"], capturable=False, fused=False,
                                     decoupled_weight_decay=False, **off)
    else:
        optimizer = torch.optim.RMSprop(parameters, lr=lr, alpha=h["rho"], eps=h["epsilon"], momentum=h["momentum"],
                                        centered=h["centered"], capturable=False, **off)
    return optimizer, ADAPTER.native_convention(spec)


def build_loss(torch, loss: str, clip: str):
    """Batch-mean losses with the cross-entropy guard pinned.

    MSE is ``nn.MSELoss``; binary cross-entropy with the torch guard is
    ``nn.BCELoss`` (log clamped at -100); other guards are written out.
    """
    if loss == "mse":
        return torch.nn.MSELoss(reduction="mean")

    def log_guarded(p):
        if clip == "keras":
            return torch.log(torch.clamp(p, KERAS_EPSILON, 1.0 - KERAS_EPSILON))
        if clip == "torch":
            return torch.clamp(torch.log(p), min=TORCH_LOG_FLOOR)
        return torch.log(p)

    if loss == "binary_crossentropy":
        if clip == "torch":
            return torch.nn.BCELoss(reduction="mean")

        def bce(p, y):
            if clip == "keras":
                p = torch.clamp(p, KERAS_EPSILON, 1.0 - KERAS_EPSILON)
                return -torch.mean(y * torch.log(p) + (1 - y) * torch.log(1 - p))
            return -torch.mean(y * log_guarded(p) + (1 - y) * log_guarded(1 - p))
        return bce

    if loss == "categorical_crossentropy":
        def cce(p, y):
            if clip == "keras":
                p = p / torch.sum(p, dim=-1, keepdim=True)
            return -torch.mean(torch.sum(y * log_guarded(p), dim=-1))
        return cce
    raise ValueError(f"no torch loss for {loss!r}")


def layer_outputs(torch, model, X) -> list[np.ndarray]:
    """Each layer's activations on X, by the model's own modules (Linear, then the activation)."""
    out, a = [], X
    with torch.no_grad():
        for linear, activation in zip(model[0::2], model[1::2]):
            a = activation(linear(a))
            out.append(a.numpy().copy())
    return out


def _calls(torch, model, loss_fn) -> tuple[list[Any], Any]:
    """Each module's own ``forward`` (bound once per run: a ``forward`` patched on a torch class is
    the one called) and the loss's, without ``Module.__call__``'s hook dispatch (no hooks are set)."""
    forwards = [module.forward for module in model]
    return forwards, loss_fn.forward if isinstance(loss_fn, torch.nn.Module) else loss_fn


def _torch_code(fn: Any, module: Any, qualname: str) -> bool:
    """Whether ``fn`` is the function ``qualname`` of torch's own ``module`` (its code object's file
    and qualified name): a patched function, wrapped with ``functools.wraps`` or not, is not."""
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename == module.__file__ and code.co_qualname == qualname


def _stepper(optimizer: Any) -> Callable[[], Any]:
    """``optimizer.step`` without torch's profiler label around it: when the class's ``step`` is
    torch's own ``Optimizer.profile_hook_step`` wrapper (a ``record_function`` and the step hooks)
    and no step hook is registered, the step it wraps (the class's: a step patched on the class is
    the one wrapped, so the one called); otherwise ``optimizer.step`` itself."""
    registry = importlib.import_module("torch.optim.optimizer")
    step = type(optimizer).step
    hooks = (registry._global_optimizer_pre_hooks, registry._global_optimizer_post_hooks,
             optimizer._optimizer_step_pre_hooks, optimizer._optimizer_step_post_hooks)
    wrapped = getattr(step, "__wrapped__", None)
    if wrapped is None or any(hooks) or not _torch_code(step, registry, "Optimizer.profile_hook_step.<locals>.wrapper"):
        return optimizer.step
    return partial(wrapped, optimizer)


def _zeroer(optimizer: Any) -> Callable[[], None]:
    """``optimizer.zero_grad(set_to_none=False)``. When the class's ``zero_grad`` is torch's own
    (``Optimizer.zero_grad`` under ``torch._disable_dynamo``) and the optimizer is not ``foreach``
    or ``fused``, that method zeroes each existing gradient in place, ``grad.zero_()``, after
    detaching it (a no-op for a gradient ``backward`` made without ``create_graph``), inside a
    profiler label: the same ``zero_()`` calls without the label. Any other ``zero_grad`` (a
    subclass's, a patched one) is called."""
    def call() -> None:
        optimizer.zero_grad(set_to_none=False)

    method = type(optimizer).zero_grad
    if (optimizer.defaults.get("foreach") or optimizer.defaults.get("fused")
            or not _torch_code(method, importlib.import_module("torch._compile"), "_disable_dynamo.<locals>.inner")
            or not _torch_code(getattr(method, "__wrapped__", None), importlib.import_module("torch.optim.optimizer"),
                               "Optimizer.zero_grad")):
        return call
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def zero() -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if any(g.grad_fn is not None or g.requires_grad or g.is_sparse for g in grads):
            call()
            return
        for g in grads:
            g.zero_()
    return zero


class _Views:
    """NumPy views of the parameters and their gradients (torch's layout), made once and again only
    when a tensor or its storage changes: recording a step is one array copy per tensor."""

    def __init__(self, params: list[Any]) -> None:
        self._params = params
        self._keys: list[tuple[Any, int, Any, int]] = []
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []

    def current(self) -> "_Views":
        keys = [(p, p.data_ptr(), p.grad, p.grad.data_ptr()) for p in self._params]
        if len(keys) != len(self._keys) or any(a[1] != b[1] or a[2] is not b[2] or a[3] != b[3]
                                               for a, b in zip(keys, self._keys)):
            self._keys = keys
            self.params = [p.detach().numpy() for p in self._params]
            self.grads = [p.grad.detach().numpy() for p in self._params]
        return self


def _run(plan: TrainingPlan) -> Trajectory:
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(framework_threads())
    dtype = _dtype(torch, plan.dtype)
    scenario, training = plan.scenario, plan.scenario.training
    model, linears = build_model(torch, scenario, dtype)
    set_params(torch, linears, plan.initial_params)
    named = named_parameters(linears)
    X, y = torch.from_numpy(plan.X), torch.from_numpy(plan.y)
    trajectory = Trajectory(framework=ADAPTER.name, dtype=plan.dtype,
                            initial_params={k: v.copy() for k, v in plan.initial_params.items()},
                            outputs_initial=layer_outputs(torch, model, X), device=gpu_visibility())
    if training is None:
        trajectory.outputs_final = trajectory.outputs_initial
        return trajectory
    params = [p for _, p in named]
    optimizer, trajectory.convention = build_optimizer(torch, training.optimizer, params, file=scenario.path)
    loss_fn = build_loss(torch, training.loss, training.clip)
    forwards, loss_forward = _calls(torch, model, loss_fn)
    step_fn, zero_grad = _stepper(optimizer), _zeroer(optimizer)
    # each step recorded by copying NumPy views of torch's own tensors into arrays in torch's layout,
    # put in the reference layout once at the end; the losses kept as tensors and copied once
    np_dtype = np.dtype(plan.dtype)
    losses: list[Any] = []
    params_out = [np.empty((plan.max_steps, *p.shape), np_dtype) for p in params]
    grads_out = [np.empty((plan.max_steps, *p.shape), np_dtype) for p in params]
    views = _Views(params)
    full = plan.is_full_batch_in_order
    rows = RowIds(plan.X)
    all_rows = rows.ids(plan.X)
    tol = plan.early_stop_tol
    previous = np.inf
    for step in range(plan.max_steps):
        if full:
            xb, yb = X, y
        else:
            idx = torch.from_numpy(plan.batch_indices(step))
            xb, yb = X[idx], y[idx]
        zero_grad()
        a = xb
        for forward in forwards:
            a = forward(a)
        loss = loss_forward(a, yb)
        if tol is not None:
            loss_value = loss.detach().numpy()[()]  # a NumPy scalar of the run's dtype, as the reference has
            if should_stop(loss_value, previous, tol):
                trajectory.stopped_early_at = step
                break
            previous = loss_value
        loss.backward()
        if step == 0:
            first = named[0][1]
            trajectory.computed_dtypes = dtype_names(parameters=first, loss=loss, gradients=first.grad)
        step_fn()
        losses.append(loss.detach())
        current = views.current()
        for p_view, g_view, p_out, g_out in zip(current.params, current.grads, params_out, grads_out):
            p_out[step] = p_view
            g_out[step] = g_view
        trajectory.batch_rows.append(all_rows if xb is X else rows.ids(xb.numpy()))
    steps = len(losses)
    trajectory.losses = torch.stack(losses).numpy().astype(np_dtype) if losses else np.empty(0, np_dtype)
    trajectory.params = {n: from_torch(n, out[:steps]).copy() for (n, _), out in zip(named, params_out)}
    trajectory.grads = {n: from_torch(n, out[:steps]).copy() for (n, _), out in zip(named, grads_out)}
    trajectory.outputs_final = layer_outputs(torch, model, X)
    return trajectory


def _ref(name: str, tensor) -> np.ndarray:
    return from_torch(name, tensor.detach().numpy())


def _trace_step(plan: TrainingPlan, step: int) -> Params:
    """Replay steps ``0 .. step-1`` as ``run`` does (so the optimizer state is the run's), then
    record step ``step`` stage by stage in the reference layout (``harness.run.trajectory.trace_stages``)."""
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(framework_threads())
    dtype = _dtype(torch, plan.dtype)
    scenario, training = plan.scenario, plan.scenario.training_spec
    model, linears = build_model(torch, scenario, dtype)
    set_params(torch, linears, plan.initial_params)
    named = named_parameters(linears)
    optimizer, _ = build_optimizer(torch, training.optimizer, [p for _, p in named], file=scenario.path)
    loss_fn = build_loss(torch, training.loss, training.clip)
    X, y = torch.from_numpy(plan.X), torch.from_numpy(plan.y)
    trace: dict[str, np.ndarray] = {}
    for t in range(step + 1):
        idx = torch.from_numpy(plan.batch_indices(t))
        xb, yb = X[idx], y[idx]
        optimizer.zero_grad(set_to_none=False)
        if t < step:
            loss_fn(model(xb), yb).backward()
            optimizer.step()
            continue
        with torch.no_grad():
            trace.update({f"params {n}": _ref(n, p).copy() for n, p in named})
        a = xb
        for i, (linear, activation) in enumerate(zip(model[0::2], model[1::2])):
            a = activation(linear(a))
            trace[f"output layers.{i}"] = a.detach().numpy().copy()
        loss = loss_fn(a, yb)
        trace["loss"] = loss.detach().numpy().copy()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            trace.update({f"gradient {n}": _ref(n, p.grad).copy() for n, p in named})
            trace.update({f"updated {n}": _ref(n, p).copy() for n, p in named})
    return trace


def gpu_visibility() -> str:
    """Whether a GPU was visible to torch in this process (runs never use one); torch is not
    imported for the question."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "GPU: not checked (torch not imported)"
    return f"GPU: {'visible to torch but not used' if torch.cuda.is_available() else 'none visible to torch'}"


def _dtype(torch, dtype: str):
    return {"float64": torch.float64, "float32": torch.float32}[dtype]


class TorchAdapter:
    name: str = "torch"
    conventions: tuple[str, ...] = ("torch",)
    optimizer_module: str = "torch.optim"
    narrowing_rule: str | None = None  # it returns no 32-bit results from 64-bit inputs
    subnormals: str | None = None  # kept (torch.set_flush_denormal is off)
    ties: str | None = None  # torch.clamp passes the gradient at the bounds

    def available(self) -> str | None:
        return missing("torch")

    def native_convention(self, spec: OptimizerSpec) -> str:
        return native(spec, "torch")

    def run(self, plan: TrainingPlan) -> Trajectory:
        return _run(plan)

    def trace_step(self, plan: TrainingPlan, step: int) -> Params:
        return _trace_step(plan, step)

    def forward(self, scenario: Scenario, params: Params, X: np.ndarray) -> list[np.ndarray]:
        import torch

        model, linears = build_model(torch, scenario, _dtype(torch, X.dtype.name))
        set_params(torch, linears, params)
        return layer_outputs(torch, model, torch.from_numpy(X))

    def loss(self, scenario: Scenario, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        import torch

        training = scenario.training_spec
        with torch.no_grad():
            return build_loss(torch, training.loss, training.clip)(torch.from_numpy(y_pred),
                                                                   torch.from_numpy(y_true)).numpy()

    def gradients(self, scenario: Scenario, params: Params, X: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, Params]:
        """Autograd through the model and the loss the training loop uses."""
        import torch

        assert scenario.training is not None, "gradients need a training loss"
        model, linears = build_model(torch, scenario, _dtype(torch, X.dtype.name))
        set_params(torch, linears, params)
        loss = build_loss(torch, scenario.training.loss, scenario.training.clip)(model(torch.from_numpy(X)),
                                                                                  torch.from_numpy(y))
        loss.backward()
        return loss.detach().numpy(), {n: _ref(n, p.grad).copy() for n, p in named_parameters(linears)}

    def fit_baseline_seconds(self, plan: TrainingPlan) -> float | None:
        return None


ADAPTER = TorchAdapter()
