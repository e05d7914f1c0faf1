#!/usr/bin/env python3
"""Server-side start skew from a packet capture: when each `activity.started` frame left the
server (the kernel's capture timestamp on loopback), minus the frame's `server_time` (the
instant the Activity actor pushed it, at or just after `starts_at`). Unlike the load
generator's `start_skew`, this excludes the time the client takes to read its sockets.

    tcpdump -i lo -s 256 -w crowd.pcap 'tcp src port 9100' &
    ... run the flash crowd against the node on port 9100 ...
    bench/wire-skew.py crowd.pcap [starts_at_ms]

Without `starts_at_ms` the frames' own `server_time` is the reference.
"""
import re
import struct
import sys

STARTED = re.compile(rb'"ev":"activity.started"[^}]*?"server_time":(\d+)')


def frames(path):
    """(timestamp in ms, payload bytes) of every captured packet."""
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        nanos = magic == 0xA1B23C4D
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _ = struct.unpack("<IIII", rec)
            data = f.read(incl)
            yield sec * 1000 + frac / (1e6 if nanos else 1e3), data


def main():
    path = sys.argv[1]
    reference = float(sys.argv[2]) if len(sys.argv) > 2 else None
    skews = []
    for ts, data in frames(path):
        for m in STARTED.finditer(data):
            start = reference if reference is not None else float(m.group(1))
            skews.append(ts - start)
    if not skews:
        sys.exit("no activity.started frame in the capture")
    skews.sort()

    def pct(p):
        return skews[min(len(skews) - 1, int(len(skews) * p / 100))]

    print(
        f"frames {len(skews)}  first {skews[0]:.1f} ms  p50 {pct(50):.1f} ms  "
        f"p90 {pct(90):.1f} ms  p99 {pct(99):.1f} ms  max {skews[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
