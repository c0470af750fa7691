"""A strict parser of the Prometheus text exposition format 0.0.4, for the metrics tests
and bench/metrics-scrape: every line must be a HELP, a TYPE or a sample of a declared
family; label values are unescaped; histograms must have ascending cumulative buckets
ending in +Inf equal to _count. Raises ValueError naming the line on anything else."""

import math
import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(" + _NAME + r")(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)')


def _unescape(v):
    return re.sub(r"\\([\\\"n])", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _value(text, line):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad value {text!r} in line {line!r}")


def parse(text):
    """-> {family: {"type", "help", "samples": {(name, frozenset(labels.items())): value}}}"""
    if not text.endswith("\n"):
        raise ValueError("exposition does not end with a newline")
    families, owner = {}, {}
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            if not re.fullmatch(_NAME, name):
                raise ValueError(f"bad metric name in {line!r}")
            f = families.setdefault(name, {"type": None, "help": None, "samples": {}})
            key = "help" if kind == "HELP" else "type"
            if f[key] is not None:
                raise ValueError(f"second {kind} for {name}")
            if kind == "TYPE":
                if arg not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise ValueError(f"bad type in {line!r}")
                if f["samples"]:
                    raise ValueError(f"TYPE of {name} after its samples")
                suffixes = ["_bucket", "_sum", "_count"] if arg == "histogram" else [""]
                for s in suffixes:
                    owner[name + s] = name
            f[key] = arg
            continue
        if line.startswith("#") or not line:
            raise ValueError(f"unexpected line {line!r}")
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"bad sample line {line!r}")
        name, labeltext, value = m.group(1), m.group(3), m.group(4)
        labels = {}
        if labeltext:
            pos = 0
            while pos < len(labeltext):
                lm = _LABEL.match(labeltext, pos)
                if not lm:
                    raise ValueError(f"bad labels in {line!r}")
                if lm.group(1) in labels:
                    raise ValueError(f"label {lm.group(1)} twice in {line!r}")
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        if name not in owner:
            raise ValueError(f"sample {name} of no declared family: {line!r}")
        fam = families[owner[name]]
        key = (name, frozenset(labels.items()))
        if key in fam["samples"]:
            raise ValueError(f"duplicate series {line!r}")
        fam["samples"][key] = _value(value, line)
    for name, f in families.items():
        if f["type"] == "histogram":
            _check_histogram(name, f["samples"])
    return families


def _check_histogram(name, samples):
    series = {}
    for (n, labels), v in samples.items():
        if n == name + "_bucket":
            d = dict(labels)
            le = d.pop("le")
            series.setdefault(frozenset(d.items()), []).append((_value(le, le), v))
    for labels, buckets in series.items():
        buckets.sort()
        if not buckets or not math.isinf(buckets[-1][0]):
            raise ValueError(f"{name}{dict(labels)}: no +Inf bucket")
        counts = [v for _, v in buckets]
        if counts != sorted(counts):
            raise ValueError(f"{name}{dict(labels)}: buckets not cumulative")
        if samples.get((name + "_count", labels)) != counts[-1]:
            raise ValueError(f"{name}{dict(labels)}: _count differs from the +Inf bucket")
        if (name + "_sum", labels) not in samples:
            raise ValueError(f"{name}{dict(labels)}: no _sum")


def value(families, name, default=None, **labels):
    """The sample `name` with exactly these labels (for histograms: name_count etc.)."""
    for fam in families.values():
        v = fam["samples"].get((name, frozenset(labels.items())))
        if v is not None:
            return v
    return default
