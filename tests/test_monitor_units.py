"""The monitor's pure parts and its sinks: window statistics, rule firing, request-log masking, webhook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from tunegate.monitor.alerts import Alerts
from tunegate.monitor.requestlog import RequestLog
from tunegate.monitor.rules import MIN_FEEDBACK, evaluate
from tunegate.monitor.windows import summarize
from tunegate.serve.events import FeedbackEvent, RequestEvent
from tunegate.spec.schema import RollbackSpec


def _request(
    status: int = 200, latency_ms: float = 10.0, confidences=(0.9,), text: str = "hi"
) -> RequestEvent:
    return RequestEvent(
        request_id="r",
        time_s=1.0,
        endpoint="classify",
        status_code=status,
        latency_ms=latency_ms,
        model_ref="m@1",
        texts=(text,),
        confidences=tuple(confidences),
    )


def test_window_statistics() -> None:
    rng = np.random.default_rng(0)
    latencies = rng.exponential(20, 200)
    events = [_request(200, float(x), (0.55 + 0.4 * (i % 2),)) for i, x in enumerate(latencies)]
    events += [_request(500, 5.0, ()) for _ in range(10)] + [_request(429, 1.0, ()) for _ in range(7)]
    events += [_request(400, 2.0, ()) for _ in range(3)]
    feedback = [
        FeedbackEvent("r", 1.0, correct, None, "m@1") for correct in [True] * 6 + [False] * 4 + [None] * 2
    ]
    w = summarize("m@1", events, feedback, 0.0, 60.0)
    answered = np.concatenate([latencies, [5.0] * 10, [2.0] * 3])
    assert w.requests == 213 and w.rejected == 7 and w.errors == 10 and w.client_errors == 3
    assert w.error_rate == pytest.approx(10 / 213)
    assert w.p95_latency_ms == pytest.approx(np.percentile(answered, 95))
    assert w.mean_confidence == pytest.approx(0.75) and sum(w.confidence_histogram) == 200
    assert w.confidence_histogram[5] == 100 and w.confidence_histogram[9] == 100
    assert w.feedback == 12 and w.negative_feedback == 4 and w.negative_feedback_rate == pytest.approx(0.4)


def _window(error_rate: float, requests: int = 100, feedback: int = 0, negative: float | None = None):
    events = [_request(500 if i < round(error_rate * requests) else 200) for i in range(requests)]
    bad = round((negative or 0) * feedback)
    fb = [FeedbackEvent("r", 1.0, i >= bad, None, "m@1") for i in range(feedback)]
    return summarize("m@1", events, fb, 0.0, 1.0)


def test_a_rule_fires_only_on_consecutive_windows_with_enough_requests() -> None:
    rules = RollbackSpec(error_rate_max=0.05, consecutive_windows=2, min_requests=50, drift=False)
    assert evaluate([_window(0.2)], [], None, rules) == []  # one window is noise
    assert evaluate([_window(0.2), _window(0.01), _window(0.2)], [], None, rules) == []  # not in a row
    assert evaluate([_window(0.2, requests=20), _window(0.2, requests=20)], [], None, rules) == []  # too few
    firing = evaluate([_window(0.01), _window(0.1), _window(0.2)], [], None, rules)
    assert [f.rule for f in firing] == ["error_rate"] and firing[0].observed == pytest.approx([0.1, 0.2])


def test_feedback_and_drift_rules() -> None:
    rules = RollbackSpec(
        error_rate_max=None, negative_feedback_rate_max=0.3, consecutive_windows=2, min_requests=10
    )
    enough = [_window(0, feedback=MIN_FEEDBACK, negative=0.5)] * 2
    few = [_window(0, feedback=MIN_FEEDBACK - 1, negative=0.5)] * 2
    assert [f.rule for f in evaluate(enough, [], None, rules)] == ["negative_feedback_rate"]
    assert evaluate(few, [], None, rules) == []
    assert [f.rule for f in evaluate([], [0.1, 0.5, 0.6], 0.2, rules)] == ["drift"]
    assert evaluate([], [0.5, 0.1], 0.2, rules) == []
    assert evaluate([], [0.5, 0.6], 0.2, rules.model_copy(update={"drift": False})) == []


def test_request_log_masks_personal_data(tmp_path) -> None:
    log = RequestLog(tmp_path)
    log.write(
        [
            _request(text="card 4111 1111 1111 1111, mail jane.doe@example.com"),
            FeedbackEvent("r", 1.0, False, "billing", "m@1"),
        ]
    )
    log.close()
    lines = [json.loads(x) for f in tmp_path.glob("requests-*.jsonl") for x in f.read_text().splitlines()]
    assert [x["type"] for x in lines] == ["request", "feedback"]
    text = lines[0]["texts"][0]
    assert "4111 1111 1111 1111" not in text and "jane.doe" not in text
    assert "[card:" in text and "[email:" in text


def test_alerts_reach_the_webhook() -> None:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alerts = Alerts(f"http://127.0.0.1:{server.server_port}/hook")
        alerts.raise_alert(
            "rollback", "tickets", "tickets@2: error_rate above 0.05", {"version": "tickets@2"}
        )
        alerts.wait()
        dead = Alerts("http://127.0.0.1:9/nothing-listens", timeout_s=1)
        dead.raise_alert("incident", "tickets", "webhook down")  # must not raise
        dead.wait()
    finally:
        server.shutdown()
    assert received and received[0]["kind"] == "rollback" and received[0]["details"]["version"] == "tickets@2"
    assert dead.webhook_failures == 1 and dead.sent[0]["message"] == "webhook down"
