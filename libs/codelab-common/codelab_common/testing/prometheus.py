"""Reading a `/metrics` answer in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` (e.g. `gateway_connections_total`) with exactly `labels`; 0 when there is
    none, as a counter that never moved is absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
