"""CPU time, in clock ticks, of the server and of PostgreSQL.

    python3 bench/cpu.py <server pid>

prints `server=<ticks> postgres=<ticks>`: the server process (all its
threads) with its live children (a server of several worker processes),
and every process named `postgres` plus what the postmaster has reaped
from backends that exited (their CPU would otherwise be lost).
"""

import os
import sys


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    # The command name is in parentheses and may hold blanks.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # Fields 14-17 of proc(5): utime, stime, cutime, cstime; here 0-based
    # after the state (field 3).
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    ppid = int(fields[1])
    return comm, ppid, utime + stime, cutime + cstime


def main():
    server_pid = int(sys.argv[1])
    server = stat(server_pid)[2]
    postgres = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm, ppid, own, reaped = stat(entry)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if ppid == server_pid:
            server += own
            continue
        if comm != "postgres":
            continue
        postgres += own
        try:
            parent = stat(ppid)[0]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            parent = ""
        if parent != "postgres":
            # The postmaster: its children's time, once reaped.
            postgres += reaped
    print(f"server={server} postgres={postgres}")


main()
