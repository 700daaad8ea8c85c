"""The data stage: read the train and test files, check them, and report before any compute is spent.

`check_data(loaded)` runs every check and returns a `DataReport` (findings, blockers, warnings, the
usable rows and the data fingerprint); `read_examples` reads one file into Examples and RowErrors.
The checks themselves are pure functions in `duplicates`, `near_duplicates`, `balance`, `lengths`
and `pii`; `verdict.decide` turns findings into blockers by the spec's rules.
"""

from tunegate.data.check import check_data, load_split_examples
from tunegate.data.examples import Example, RowError
from tunegate.data.readers import ReadResult, read_examples
from tunegate.data.report import DataReport, fingerprint

__all__ = [
    "DataReport",
    "Example",
    "ReadResult",
    "RowError",
    "check_data",
    "fingerprint",
    "load_split_examples",
    "read_examples",
]
