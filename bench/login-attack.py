#!/usr/bin/env python3
"""The login path under attack: ATTACKERS threads hammer POST /api/v1/auth/login with wrong
passwords from 127.0.0.1 (half against a real account, half against unknown names) while
legitimate users log in, one a second, each to their own account from their own address
(127.0.1.k, as users behind different IPs would). Prints the node's
RSS (sampled every 200 ms), the attackers' status counts and the legitimate logins' latency.
Bounded: DURATION seconds, at most 5,000 requests per attacker thread. Loopback only.

usage: login-attack.py PORT SERVER_PID [ATTACKERS] [DURATION]
"""
import http.client
import json
import sys
import threading
import time
from collections import Counter

PORT = int(sys.argv[1])
PID = int(sys.argv[2])
ATTACKERS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
DURATION = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0


def rss_kib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def post(conn, path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def conn_from(source):
    return http.client.HTTPConnection("127.0.0.1", PORT, timeout=30, source_address=(source, 0))


def register(name, source):
    c = conn_from(source)
    status = post(c, "/api/v1/auth/register", {"username": name, "password": "correct-horse"})
    assert status in (201, 409), status


stop = time.monotonic() + DURATION
statuses = Counter()
lock = threading.Lock()


def attacker(n):
    conn = conn_from("127.0.0.1")
    local = Counter()
    for i in range(5000):
        if time.monotonic() > stop:
            break
        name = "victim" if n % 2 == 0 else f"ghost{n}x{i}"
        try:
            local[post(conn, "/api/v1/auth/login", {"username": name, "password": "wrong-password"})] += 1
        except Exception:
            local["error"] += 1
            conn = conn_from("127.0.0.1")
    with lock:
        statuses.update(local)


def main():
    register("victim", "127.0.0.3")
    legit_users = int(DURATION) + 1
    for k in range(legit_users):
        register(f"legit{k}", f"127.0.2.{k + 1}")
    base = rss_kib()
    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(ATTACKERS)]
    for t in threads:
        t.start()
    samples = []
    latencies = []
    legit = Counter()
    next_login = time.monotonic()
    k = 0
    while time.monotonic() < stop:
        samples.append(rss_kib())
        if time.monotonic() >= next_login and k < legit_users:
            started = time.monotonic()
            try:
                conn = conn_from(f"127.0.1.{k + 1}")
                status = post(conn, "/api/v1/auth/login", {"username": f"legit{k}", "password": "correct-horse"})
            except Exception:
                status = "error"
            k += 1
            legit[status] += 1
            if status == 200:
                latencies.append((time.monotonic() - started) * 1000)
            next_login = started + 1.0
        time.sleep(0.05)
    for t in threads:
        t.join()
    samples.append(rss_kib())
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None
    print(json.dumps({
        "attackers": ATTACKERS,
        "duration_s": DURATION,
        "rss_before_kib": base,
        "rss_max_kib": max(samples),
        "rss_after_kib": samples[-1],
        "attacker_statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "legit_statuses": {str(k): v for k, v in legit.items()},
        "legit_login_ms": {"n": len(latencies), "p50": pct(0.5), "p99": pct(0.99), "max": latencies[-1] if latencies else None},
    }, indent=2))


main()
