"""HdrHistogram interval log (format v1.2) with one ``Tag=`` per metric, in integer microseconds.

The standard ``hdrh.log.HistogramLogWriter`` drops tags, so lines are written here; reading uses
the standard ``HistogramLogReader`` rules (relative timestamps against ``#[StartTime: ...]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from hdrh.histogram import HdrHistogram

from loadbench.metrics import histogram as hg
from loadbench.units import us_to_ms

_LINE = re.compile(r"^(?:Tag=([^,]*),)?([\d.]+),([\d.]+),([\d.]+),(\S+)$")


class HlogWriter:
    def __init__(self, stream: IO[str], start_unix_s: float) -> None:
        self._out = stream
        stamp = datetime.fromtimestamp(start_unix_s, UTC).isoformat()
        stream.write("#[Histogram log format version 1.2]\n")
        stream.write(f"#[StartTime: {start_unix_s:.3f} (seconds since epoch), {stamp}]\n")
        stream.write("#[loadbench: values are integer microseconds; tags are metric[:dimension=value]]\n")
        stream.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
        stream.flush()

    def write(self, tag: str, start_s: float, length_s: float, hist: HdrHistogram) -> None:
        if "," in tag or " " in tag:
            raise ValueError(f"hlog tag may not contain ',' or ' ': {tag!r}")
        max_ms = us_to_ms(hist.get_max_value())
        self._out.write(f"Tag={tag},{start_s:.3f},{length_s:.3f},{max_ms:.3f},{hg.encode(hist)}\n")

    def flush(self) -> None:
        self._out.flush()


@dataclass(slots=True)
class HlogInterval:
    tag: str
    start_s: float  # relative to StartTime
    length_s: float
    hist: HdrHistogram


def read_hlog(path: Path) -> tuple[float | None, list[HlogInterval]]:
    """(start unix seconds, intervals in file order). Lines that do not parse are skipped."""
    start: float | None = None
    out: list[HlogInterval] = []
    with path.open() as f:
        for line in f:
            line = line.strip()
            if line.startswith("#[StartTime:"):
                start = float(line.split()[1])
                continue
            m = _LINE.match(line)
            if not m:
                continue
            out.append(HlogInterval(m.group(1) or "", float(m.group(2)), float(m.group(3)),
                                    hg.decode(m.group(5))))
    return start, out


def merged_by_tag(path: Path) -> dict[str, HdrHistogram]:
    """One histogram per tag over the whole log (exact merge)."""
    return hg.merge_by_tag(read_hlog(path)[1])
