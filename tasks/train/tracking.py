"""Per-step training metrics where practitioners already look: TensorBoard, MLflow, Weights & Biases.

Every trainer (charter's own loops and the TRL ones) logs through one ``Tracker``: charter's loops call
``tracker.log(metrics, step)``; a TRL trainer gets ``tracker.callback()``, which relays TRL's own logs, so
TRL's metric names (``rewards/margins``, ``loss``, ...) are kept as TRL users know them. All three sinks
work offline and write under the checkpoint's ``logs/`` folder, so the logs travel with the checkpoint:

- ``tensorboard``: event files in ``logs/`` (``tensorboard --logdir <checkpoint>/logs``);
- ``mlflow``: a local file store in ``logs/mlruns``
  (``mlflow ui --backend-store-uri <checkpoint>/logs/mlruns``);
- ``wandb``: an offline run in ``logs/wandb`` (``wandb sync`` uploads it later).

MLflow and W&B are optional packages: ``check_report_to`` refuses them, before any model loads, when they
are not installed.
"""

from __future__ import annotations

import importlib.util
import numbers
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal

from tasks.core.errors import CharterError

ReportTo = tuple[Literal["tensorboard", "mlflow", "wandb"], ...]

# A sink receives metrics that are already numeric (floats) with their step.
Sink = Callable[[dict[str, float], int], None]

# The optional packages behind each integration and how to get them (tensorboard comes with the train extra).
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_report_to(report_to: ReportTo) -> None:
    """Refuse an integration whose package is missing, naming the install, before any training starts."""
    missing = [name for name in dict.fromkeys(report_to) if importlib.util.find_spec(_PACKAGES[name]) is None]
    if missing:
        installs = " ".join(_PACKAGES[name] for name in missing)
        raise CharterError(
            f"report_to asks for {', '.join(missing)}, which is not installed: run `pip install {installs}` "
            "or leave it out of report_to"
        )


class Tracker:
    """Hands one step's numeric metrics to every open sink; values that are not numbers are skipped."""

    def __init__(self, sinks: list[Sink]) -> None:
        self._sinks = sinks

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        numeric = {key: float(value) for key, value in metrics.items() if _is_number(value)}
        if not numeric:
            return
        for sink in self._sinks:
            sink(numeric, step)

    def callback(self) -> Any:
        """A transformers ``TrainerCallback`` that relays the trainer's logs (its own metric names) here."""
        from transformers import TrainerCallback

        tracker = self

        class RelayLogs(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and state.is_world_process_zero:
                    tracker.log(logs, state.global_step)

        return RelayLogs()


@contextmanager
def tracked(report_to: ReportTo, log_dir: Path, run_name: str) -> Iterator[Tracker]:
    """Open the asked-for sinks under ``log_dir`` for one run; close them on exit, exceptions included.

    An empty ``report_to`` gives a tracker that logs nothing and creates no folder.
    """
    check_report_to(report_to)
    with ExitStack() as stack:
        sinks = [
            stack.enter_context(_OPENERS[name](Path(log_dir), run_name)) for name in dict.fromkeys(report_to)
        ]
        yield Tracker(sinks)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@contextmanager
def _tensorboard(log_dir: Path, run_name: str) -> Iterator[Sink]:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:

        def write(metrics: dict[str, float], step: int) -> None:
            for key, value in metrics.items():
                writer.add_scalar(key, value, global_step=step)

        yield write
    finally:
        writer.close()


@contextmanager
def _mlflow(log_dir: Path, run_name: str) -> Iterator[Sink]:
    from mlflow.tracking import MlflowClient

    store = log_dir / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    # A client of its own (not mlflow's global tracking URI), so a user's MLflow setup is left untouched.
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name("charter")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("charter")
    run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    status = "FAILED"
    try:

        def write(metrics: dict[str, float], step: int) -> None:
            for key, value in metrics.items():
                client.log_metric(run_id, key, value, step=step)

        yield write
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)


@contextmanager
def _wandb(log_dir: Path, run_name: str) -> Iterator[Sink]:
    import wandb

    log_dir.mkdir(parents=True, exist_ok=True)
    # Offline: nothing leaves the machine; `wandb sync <checkpoint>/logs/wandb/offline-run-*` uploads later.
    run = wandb.init(mode="offline", dir=str(log_dir), name=run_name, reinit="create_new")
    exit_code = 1
    try:

        def write(metrics: dict[str, float], step: int) -> None:
            run.log(metrics, step=step)

        yield write
        exit_code = 0
    finally:
        run.finish(exit_code=exit_code)


_OPENERS: dict[str, Callable[[Path, str], AbstractContextManager[Sink]]] = {
    "tensorboard": _tensorboard,
    "mlflow": _mlflow,
    "wandb": _wandb,
}
