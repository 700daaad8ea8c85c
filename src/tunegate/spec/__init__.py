"""The spec stage: tunegate.yaml, written before training, validated before any compute is spent."""

from tunegate.spec.load import SPEC_FILENAME, LoadedSpec, load_spec, parse_spec, spec_hash
from tunegate.spec.schema import Spec

__all__ = ["SPEC_FILENAME", "LoadedSpec", "Spec", "load_spec", "parse_spec", "spec_hash"]
