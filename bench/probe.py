"""A light, steady client: GET a path with a bearer token at a fixed rate
over one keep-alive connection, then print the latency percentiles.

    python3 probe.py <base-url> <token> <path> <seconds> [per-second]
"""

import http.client
import statistics
import sys
import time
from urllib.parse import urlparse


def main() -> None:
    base, token, path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 50.0
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    latencies, errors = [], 0
    interval = 1.0 / rate
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except OSError:
            errors += 1
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        latencies.append((time.monotonic() - started) * 1000)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    q = statistics.quantiles(latencies, n=100)
    print(f"RESULT requests={len(latencies)} p50_ms={q[49]:.2f} p99_ms={q[98]:.2f} errors={errors}")


if __name__ == "__main__":
    main()
