"""Parse what tests/web_metrics.rs hands over with real parsers, as JSON.

`parse.py metrics` reads a Prometheus text exposition on stdin and parses
it with prometheus_client's own parser (`text_string_to_metric_families`,
pip package prometheus-client==0.21.1); it prints one JSON object per
family: {"name", "type", "samples": [{"name", "labels", "value"}]}.
A malformed exposition makes the parser raise: exit status 1.

`parse.py csv PATH` reads a CSV file with Python's csv module (locusta's
error texts may hold commas and quotes) and prints its rows as JSON lists.
"""
import csv
import json
import math
import sys


def metrics():
    from prometheus_client.parser import text_string_to_metric_families

    families = []
    for family in text_string_to_metric_families(sys.stdin.read()):
        samples = []
        for s in family.samples:
            value = s.value
            if math.isinf(value) or math.isnan(value):
                value = str(value)
            samples.append({"name": s.name, "labels": s.labels, "value": value})
        families.append({"name": family.name, "type": family.type, "samples": samples})
    json.dump(families, sys.stdout)


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        json.dump(list(csv.reader(f)), sys.stdout)


if __name__ == "__main__":
    if sys.argv[1:] == ["metrics"]:
        metrics()
    elif len(sys.argv) == 3 and sys.argv[1] == "csv":
        csv_rows(sys.argv[2])
    else:
        sys.exit("usage: parse.py metrics < exposition | parse.py csv PATH")
