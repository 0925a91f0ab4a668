"""Steady writes through UserHub during a database failover, then a check
that no acknowledged write was lost. Used by deploy/failover-drill.sh.

    python3 failover_load.py run BASE_URL SECONDS OUT.json   # load until SECONDS or the file `stop` appears
    python3 failover_load.py check OUT.json DATABASE_URL      # acknowledged writes present?

Each worker registers a user, logs in, then renames it (full_name
"v<n>", n counting up) in a loop, registering a new user now and then.
Every answer is recorded with its time; a 2xx is an acknowledged write.
"""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

PASSWORD = "Failover-Drill-Passphrase-7"
WORKERS = 6


def call(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None
    except Exception:  # connection refused, reset, timeout
        return 0, None


def run(base, seconds, out):
    started = time.monotonic()
    log = []  # (t, kind, status)
    acked_users = []  # emails whose registration was acknowledged
    acked_names = {}  # user id -> highest acknowledged n
    lock = threading.Lock()
    stop_file = os.path.join(os.path.dirname(out) or ".", "stop")

    def worker(w):
        serial = 0
        user, token, n = None, None, 0
        while time.monotonic() - started < seconds and not os.path.exists(stop_file):
            t = time.monotonic() - started
            if user is None or n >= 40:
                serial += 1
                email = f"w{w}-{serial}-{int(started)}@example.com"
                status, body = call(
                    "POST",
                    base + "/api/auth/register",
                    {"email": email, "username": f"w{w}s{serial}x{int(started) % 100000}", "password": PASSWORD},
                )
                with lock:
                    log.append((t, "register", status))
                    if status == 201:
                        acked_users.append(email)
                if status != 201:
                    time.sleep(0.05)
                    continue
                status, tokens = call("POST", base + "/api/auth/login", {"email": email, "password": PASSWORD})
                with lock:
                    log.append((time.monotonic() - started, "login", status))
                if status != 200:
                    user = None
                    time.sleep(0.05)
                    continue
                user, token, n = body["id"], tokens["access_token"], 0
                continue
            n += 1
            status, _ = call("PUT", f"{base}/api/users/{user}", {"full_name": f"v{n}"}, token)
            with lock:
                log.append((t, "update", status))
                if status == 200:
                    acked_names[user] = max(acked_names.get(user, 0), n)
            if status == 401:
                user = None  # the session did not survive: start over
            if status != 200:
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(out, "w") as f:
        json.dump({"log": log, "users": acked_users, "names": acked_names}, f)


def check(out, database_url):
    with open(out) as f:
        data = json.load(f)
    log = data["log"]
    statuses = {}
    for _, _, status in log:
        statuses[status] = statuses.get(status, 0) + 1
    unavailable = [t for t, _, status in log if status in (0, 503)]
    window = (max(unavailable) - min(unavailable)) if unavailable else 0.0
    errors = sum(n for status, n in statuses.items() if status >= 500 and status != 503)
    # Acknowledged registrations and renames, as the new primary has them.
    query = "SELECT email FROM users"
    emails = set(
        subprocess.run(["psql", database_url, "-Atc", query], check=True, capture_output=True, text=True).stdout.split()
    )
    lost_users = [e for e in data["users"] if e not in emails]
    rows = subprocess.run(
        ["psql", database_url, "-Atc", "SELECT id, full_name FROM users WHERE full_name LIKE 'v%'"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    stored = {}
    for row in rows:
        uid, name = row.split("|")
        stored[uid] = int(name[1:])
    lost_names = [u for u, n in data["names"].items() if stored.get(u, 0) < n]
    acked = len(data["users"]) + sum(data["names"].values())
    summary = {
        "requests": len(log),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "unavailable_seconds": round(window, 1),
        "server_errors": errors,
        "acknowledged_registrations": len(data["users"]),
        "acknowledged_renames": sum(data["names"].values()),
        "lost_registrations": len(lost_users),
        "lost_renames": len(lost_names),
    }
    print(json.dumps(summary))
    ok = errors == 0 and not lost_users and not lost_names and acked > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    else:
        check(sys.argv[2], sys.argv[3])
