#!/usr/bin/env python3
"""Records the UDP datagrams sent to a multicast group (or a unicast address) with
their arrival times, for the transport-stream checker in tests/common/ts.rs.

    mcast_capture.py --group 239.255.0.1 --port 5000 --iface-addr 127.0.0.1 \\
        --duration 5 [--count 100] [--ready-file PATH] --output capture.bin

Joins GROUP on the interface with address IFACE_ADDR (a unicast GROUP is bound, not
joined), receives until DURATION seconds have passed or COUNT datagrams arrived, and
writes OUTPUT as records of

    [u64 big-endian arrival time, ns, monotonic clock][u32 big-endian length][datagram]

Arrival times come from the kernel's receive timestamp (SO_TIMESTAMPNS), moved onto
the monotonic clock, so a slow Python loop does not show up as bursts; a datagram
without one is stamped when read. READY_FILE, if given, is created once the socket is
bound and the group joined, so a test can start its sender then. Prints nothing on
success; exits non-zero, saying why, on an error or if nothing arrived.

Python 3 standard library only.
"""

import argparse
import ipaddress
import socket
import struct
import sys
import time

# Linux's value; Python only names it from 3.13 on some builds.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@ll")
RECORD_HEADER = struct.Struct(">QI")
MAX_DATAGRAM = 65535
# Room for a few seconds of a high-rate stream while the loop is descheduled.
RECEIVE_BUFFER = 8 * 1024 * 1024


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", required=True, help="multicast group to join, or a unicast address to bind")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--iface-addr",
        default="127.0.0.1",
        help="IPv4 address of the interface to join the group on (default 127.0.0.1)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to receive for at most (default 5)")
    parser.add_argument("--count", type=int, help="stop after this many datagrams")
    parser.add_argument("--output", required=True, help="file to write the records to")
    parser.add_argument("--ready-file", help="created once the socket is bound and the group joined")
    return parser.parse_args()


def open_socket(group, port, iface_addr):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    # Bound to the group address, the socket gets that group's datagrams only, not
    # every group joined on the host.
    sock.bind((group, port))
    if ipaddress.IPv4Address(group).is_multicast:
        membership = socket.inet_aton(group) + socket.inet_aton(iface_addr)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    return sock


def arrival_ns(ancillary):
    """The kernel's receive time on the monotonic clock, or now."""
    mono_now = time.monotonic_ns()
    real_now = time.time_ns()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanos = TIMESPEC.unpack(data[: TIMESPEC.size])
            age = real_now - (seconds * 1_000_000_000 + nanos)
            return mono_now - max(age, 0)
    return mono_now


def capture(sock, duration, count):
    records = []
    deadline = time.monotonic() + duration
    ancillary_size = socket.CMSG_SPACE(TIMESPEC.size)
    while count is None or len(records) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data, ancillary, _flags, _sender = sock.recvmsg(MAX_DATAGRAM, ancillary_size)
        except socket.timeout:
            break
        records.append((arrival_ns(ancillary), data))
    return records


def main():
    args = parse_args()
    for option, value in (("--group", args.group), ("--iface-addr", args.iface_addr)):
        try:
            ipaddress.IPv4Address(value)
        except ValueError as err:
            sys.exit(f"mcast_capture: {option}: {err}")
    try:
        sock = open_socket(args.group, args.port, args.iface_addr)
        if args.ready_file:
            with open(args.ready_file, "w"):
                pass
        records = capture(sock, args.duration, args.count)
        sock.close()
    except OSError as err:
        sys.exit(f"mcast_capture: receiving on {args.group}:{args.port} via {args.iface_addr}: {err}")
    if not records:
        sys.exit(f"mcast_capture: no datagram arrived on {args.group}:{args.port} within {args.duration} s")
    try:
        with open(args.output, "wb") as out:
            for arrival, data in records:
                out.write(RECORD_HEADER.pack(arrival, len(data)))
                out.write(data)
    except OSError as err:
        sys.exit(f"mcast_capture: writing {args.output}: {err}")


if __name__ == "__main__":
    main()
