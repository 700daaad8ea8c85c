"""The data report as one standalone HTML file: inline CSS, charts as inline SVG, no network needed.

Charts are drawn by matplotlib with the Agg backend (no display needed) and embedded as SVG text,
with a fixed hash salt and no date so the same report renders to the same bytes. The page itself is
a jinja2 template (`templates/data_report.html.j2`) with autoescaping on: row texts are user data.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from tunegate.data.report import DataReport

_TEMPLATE = "data_report.html.j2"


def render_html(report: DataReport) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tunegate.data", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(_TEMPLATE).render(
        report=report.to_dict(),
        balance_svg=_balance_chart(report),
        lengths_svg=_lengths_chart(report),
    )


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "tunegate"
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, and searchable in the page
    return plt


def _balance_chart(report: DataReport) -> str:
    balance = report.balance
    if not balance.classes:
        return ""
    plt = _pyplot()
    classes = list(balance.classes)
    width = 0.4
    figure, axes = plt.subplots(figsize=(max(4.0, 0.6 * len(classes) + 2), 3.0))
    positions = range(len(classes))
    axes.bar(
        [p - width / 2 for p in positions], [balance.train_counts[c] for c in classes], width, label="train"
    )
    axes.bar(
        [p + width / 2 for p in positions], [balance.test_counts[c] for c in classes], width, label="test"
    )
    axes.axhline(
        balance.min_examples_per_class,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"min per class ({balance.min_examples_per_class})",
    )
    axes.set_xticks(
        list(positions),
        classes,
        rotation=30 if len(classes) > 6 else 0,
        ha="right" if len(classes) > 6 else "center",
    )
    axes.set_ylabel("rows")
    axes.legend(frameon=False, fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def _lengths_chart(report: DataReport) -> str:
    lengths = [item for item in report.lengths.values() if item.lengths]
    if not lengths:
        return ""
    plt = _pyplot()
    max_length = lengths[0].max_length
    longest = max(item.longest for item in lengths)
    figure, axes = plt.subplots(figsize=(6.0, 3.0))
    upper = max(longest, max_length) + 1  # the max_length line is always in view
    for item in lengths:
        axes.hist(item.lengths, bins=min(60, upper), range=(0, upper), alpha=0.6, label=item.split)
    axes.axvline(max_length, color="tab:red", linestyle="--", linewidth=1, label=f"max_length ({max_length})")
    axes.set_xlabel("tokens per text")
    axes.set_ylabel("rows")
    axes.legend(frameon=False, fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)
