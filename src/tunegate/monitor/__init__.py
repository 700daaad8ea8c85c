"""Monitor stage: request log, rolling windows, drift against training data, alerts, automatic rollback."""

from tunegate.monitor.alerts import Alerts
from tunegate.monitor.drift import DriftDetector, calibrate, mmd2, split_reference
from tunegate.monitor.rules import Firing, evaluate
from tunegate.monitor.service import Monitor, read_state, start_monitor, training_reference
from tunegate.monitor.windows import WindowStats, summarize

__all__ = [
    "Alerts",
    "DriftDetector",
    "Firing",
    "Monitor",
    "WindowStats",
    "calibrate",
    "evaluate",
    "mmd2",
    "read_state",
    "split_reference",
    "start_monitor",
    "summarize",
    "training_reference",
]
