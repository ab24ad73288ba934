#!/usr/bin/python3
"""A one-mount RTSP server for the source tests: GStreamer's RTSP server library
(Debian: python3-gi, gir1.2-gst-rtsp-server-1.0), since gst-launch-1.0 has no RTSP
server element.

    rtsp_server.py PORT MOUNT LAUNCH

serves the gst-launch-1.0 style bin LAUNCH (payloaders named pay0, pay1, ...) at
rtsp://127.0.0.1:PORT/MOUNT, and prints `listening` once the port is bound.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    port, mount, launch = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {launch} )")
    # One pipeline for every client, so a reconnecting headend does not start a
    # second encoder on a two-core test machine.
    factory.set_shared(True)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print("listening", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
