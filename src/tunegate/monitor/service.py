"""The monitor: watches what the server answers, raises alerts, and rolls production back on its own.

It subscribes to the server's events (`observe`, called on the event loop, only enqueues) and does
everything else on its own thread, every `tick_s`:
  1. writes the request log (PII masked);
  2. per served version, closes a time window every `monitor.window_s` (errors, latency, confidence,
     feedback) and a drift window every `monitor.drift_window_size` classified texts (MMD² against
     training embeddings, threshold calibrated on held-out training rows: `monitor.drift`);
  3. judges the production version's latest windows against the spec's `rollback:` rules; when one
     fires: an alert (log + webhook), an `incident` entry in the decision log, and, if
     `rollback.automatic`, `tunegate.registry.rollback` as the system actor `system:monitor`. The
     server's registry poller then swaps the previous version in (hot swap: no request fails);
  4. writes `<workspace>/monitor/state.json`, which `tunegate monitor` shows.

One action per version: after it has fired, a version is not judged again (it is no longer in
production, or a person put it back on purpose). Not here: the statistics themselves (windows,
drift, rules are pure modules), and deciding what the server loads (the registry does).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.errors import MonitorError, RegistryError, TunegateError
from tunegate.monitor.alerts import Alerts
from tunegate.monitor.drift import DriftDetector, calibrate, split_reference
from tunegate.monitor.requestlog import RequestLog
from tunegate.monitor.rules import Firing, evaluate
from tunegate.monitor.windows import WindowStats, summarize
from tunegate.registry import rollback
from tunegate.review.access import system_actor
from tunegate.serve.events import FeedbackEvent, RequestEvent
from tunegate.spec.schema import MonitorSpec, RollbackSpec
from tunegate.store import Store, VersionRecord
from tunegate.store.decision_log import append_decision

log = logging.getLogger("tunegate.monitor")

ACTOR = system_actor("monitor")
# version -> training-text embeddings from *that version's* encoder (drift is measured in its space)
ReferenceFn = Callable[[VersionRecord], np.ndarray]


@dataclass
class _Track:
    """Everything the monitor keeps about one served version."""

    model_ref: str
    name: str
    requests: list[RequestEvent] = field(default_factory=list)
    feedback: list[FeedbackEvent] = field(default_factory=list)
    windows: deque[WindowStats] = field(default_factory=lambda: deque(maxlen=60))
    drift_buffer: list[np.ndarray] = field(default_factory=list)
    drift_scores: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    detector: DriftDetector | None = None
    drift_status: str = "waiting for traffic"
    fired: list[dict[str, Any]] = field(default_factory=list)


class Monitor:
    def __init__(
        self,
        store: Store,
        *,
        rules: RollbackSpec,
        settings: MonitorSpec,
        reference: ReferenceFn | None = None,
        alerts: Alerts | None = None,
        tick_s: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.rules = rules
        self.settings = settings
        self.reference = reference
        self.alerts = alerts or Alerts(settings.webhook_url)
        self.tick_s = tick_s
        self.clock = clock
        self.folder = store.workspace.root / "monitor"
        self.request_log = RequestLog(self.folder)
        self.tracks: dict[str, _Track] = {}
        self.incidents: list[dict[str, Any]] = []
        self._inbox: queue.SimpleQueue[RequestEvent | FeedbackEvent] = queue.SimpleQueue()
        self._window_start_s = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- wiring -----------------------------------------------------------------------------------

    def observe(self, event: RequestEvent | FeedbackEvent) -> None:
        """The server's observer: O(1), never blocks, never raises."""
        self._inbox.put(event)

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._run, name="tunegate-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.tick()
        self.request_log.close()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception:  # the monitor must outlive its own bugs; serving goes on regardless
                log.exception("monitor tick failed")

    # -- one tick ---------------------------------------------------------------------------------

    def tick(self) -> None:
        events: list[RequestEvent | FeedbackEvent] = []
        while True:
            try:
                events.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        self.request_log.write(events)
        for event in events:
            self._absorb(event)
        now = self.clock()
        if now - self._window_start_s >= self.settings.window_s:
            for track in self.tracks.values():
                track.windows.append(
                    summarize(track.model_ref, track.requests, track.feedback, self._window_start_s, now)
                )
                track.requests, track.feedback = [], []
            self._window_start_s = now
            self._judge()
            self._write_state()

    def _absorb(self, event: RequestEvent | FeedbackEvent) -> None:
        if not event.model_ref:
            return  # refused before any model was chosen (auth, size, overload): server-wide, not a version's
        track = self.tracks.get(event.model_ref)
        if track is None:
            track = self.tracks[event.model_ref] = _Track(event.model_ref, event.model_ref.split("@", 1)[0])
        if isinstance(event, FeedbackEvent):
            track.feedback.append(event)
            return
        track.requests.append(event)
        if event.embeddings is not None and event.endpoint == "classify" and event.status_code == 200:
            track.drift_buffer.extend(np.asarray(event.embeddings))
            self._score_drift(track)

    def _score_drift(self, track: _Track) -> None:
        size = self.settings.drift_window_size
        if len(track.drift_buffer) < size:
            return
        if track.detector is None and track.drift_status != "unavailable":
            track.detector = self._detector(track)
        if track.detector is None:
            del track.drift_buffer[:-size]  # keep memory bounded while drift cannot be measured
            return
        while len(track.drift_buffer) >= size:
            window, track.drift_buffer = np.stack(track.drift_buffer[:size]), track.drift_buffer[size:]
            track.drift_scores.append(track.detector.score(window))
        track.drift_status = "drifting" if track.drift_scores[-1] > track.detector.threshold else "ok"
        self._judge()

    def _detector(self, track: _Track) -> DriftDetector | None:
        if self.reference is None:
            track.drift_status = "unavailable"
            return None
        try:
            version = self.store.meta.resolve(track.model_ref)
            embeddings = self.reference(version)
            reference, held_out = split_reference(embeddings, self.settings.drift_reference_size)
            detector = calibrate(
                reference,
                held_out,
                window_size=self.settings.drift_window_size,
                false_alarm_rate=self.settings.drift_false_alarm_rate,
            )
        except (TunegateError, OSError) as exc:
            track.drift_status = "unavailable"
            log.error("drift for %s cannot be measured: %s", track.model_ref, exc)
            return None
        track.drift_status = "calibrated"
        return detector

    # -- rules and actions ------------------------------------------------------------------------

    def _judge(self) -> None:
        for track in list(self.tracks.values()):
            if track.fired:
                continue
            try:
                production = self.store.meta.resolve(f"{track.name}@production")
            except RegistryError:
                continue
            if production.ref != track.model_ref:
                continue  # canary and retired versions are shown, not acted on
            threshold = track.detector.threshold if track.detector else None
            firing = evaluate(list(track.windows), list(track.drift_scores), threshold, self.rules)
            if firing:
                self._act(track, production, firing)

    def _act(self, track: _Track, production: VersionRecord, firing: list[Firing]) -> None:
        reason = "; ".join(f.describe() for f in firing)
        details = {
            "version": production.ref,
            "rules": [f.__dict__ for f in firing],
            "windows": [w.to_dict() for w in list(track.windows)[-self.rules.consecutive_windows :]],
            "automatic_rollback": self.rules.automatic,
        }
        append_decision(
            self.store.meta,
            actor=ACTOR.name,
            action="incident",
            subject=production.ref,
            reason=reason,
            payload=details,
        )
        outcome = "alert only (rollback.automatic is false)"
        if self.rules.automatic:
            try:
                transition = rollback(self.store, ACTOR, track.name, reason=f"automatic: {reason}")
                outcome = f"rolled back to {transition.version.ref}"
            except TunegateError as exc:
                outcome = f"rollback failed: {exc}"
                append_decision(
                    self.store.meta,
                    actor=ACTOR.name,
                    action="incident",
                    subject=production.ref,
                    reason=outcome,
                    payload={"version": production.ref},
                )
        incident = {"time": self.clock(), "version": production.ref, "reason": reason, "outcome": outcome}
        track.fired.append(incident)
        self.incidents.append(incident)
        self.alerts.raise_alert(
            "rollback" if outcome.startswith("rolled") else "incident",
            track.name,
            f"{production.ref}: {reason} -> {outcome}",
            details,
        )
        self._write_state()

    # -- state for `tunegate monitor` -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "updated_at": self.clock(),
            "window_s": self.settings.window_s,
            "rules": self.rules.model_dump(),
            "incidents": self.incidents[-50:],
            "alerts": self.alerts.sent[-20:],
            "versions": {
                ref: {
                    "windows": [w.to_dict() for w in list(t.windows)[-10:]],
                    "drift": {
                        "status": t.drift_status,
                        "scores": [round(s, 6) for s in list(t.drift_scores)[-20:]],
                        **(t.detector.describe() if t.detector else {}),
                    },
                    "fired": t.fired,
                }
                for ref, t in self.tracks.items()
            },
        }

    def _write_state(self) -> None:
        path = self.folder / "state.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.state(), indent=1, default=str))
        os.replace(tmp, path)  # readers see the old state or the new one, never half of one


def read_state(store: Store) -> dict[str, Any]:
    path = store.workspace.root / "monitor" / "state.json"
    if not path.is_file():
        raise MonitorError(
            f"no monitor state at {path}: start `tunegate serve --spec ...` (it runs the monitor)"
        )
    return json.loads(path.read_text())


def training_reference(
    store: Store,
    train_file: Path,
    text_field: str = "text",
    label_field: str = "label",
) -> ReferenceFn:
    """Embed the spec's training texts with the served version's encoder (cached per version's bytes)."""
    from tunegate.data.readers import read_examples
    from tunegate.registry.resolve import load_model

    cache = store.workspace.cache_dir / "drift"

    def embed(version: VersionRecord) -> np.ndarray:
        cached = cache / f"reference-{version.artifact_sha256}.npy"
        if cached.is_file():
            return np.load(cached, allow_pickle=False)
        examples = read_examples(train_file, text_field=text_field, label_field=label_field).examples
        if not examples:
            raise MonitorError(f"{train_file}: no training texts to measure drift against")
        model = load_model(store, version)
        if not hasattr(model, "embed"):
            raise MonitorError(f"{version.ref}: drift is measured on classifier encoders only")
        embeddings = np.asarray(model.embed([e.text for e in examples]))
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cached, embeddings, allow_pickle=False)
        return embeddings

    return embed


def start_monitor(store: Store, loaded: Any, console: Any = None) -> Monitor:
    """The monitor `tunegate serve --spec` runs: the spec's rules and windows, drift on its training data."""
    spec = loaded.spec
    data = spec.data
    reference = training_reference(store, loaded.resolve(data.train), data.text_field, data.label_field)
    monitor = Monitor(store, rules=spec.rollback, settings=spec.monitor, reference=reference).start()
    if console is not None:
        console.print(
            f"monitor: {spec.monitor.window_s:g} s windows, drift every {spec.monitor.drift_window_size} texts, "
            f"automatic rollback {'on' if spec.rollback.automatic else 'off'}; state in {monitor.folder}"
        )
    return monitor
