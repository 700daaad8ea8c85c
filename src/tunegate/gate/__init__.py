"""The gate stage: targets in, PASS / FAIL per target out, with the evidence; FAIL stops rollout.

`decide` is a pure function of the spec's targets and the evaluation results; `render_gate_report`
and `print_verdict` present its verdict to people.
"""

from tunegate.gate.decide import ClassCheck, GateVerdict, TargetResult, decide
from tunegate.gate.report import print_verdict, render_gate_report

__all__ = ["ClassCheck", "GateVerdict", "TargetResult", "decide", "print_verdict", "render_gate_report"]
