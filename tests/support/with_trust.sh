#!/bin/bash
# Runs COMMAND in a private mount namespace whose system CA bundle is CA_FILE, so TLS
# clients that read the system trust store (GnuTLS through glib-networking, as
# souphttpsrc and hlsdemux2 do) trust a test's own certificate, and the host's trust
# store is not touched. The command is exec'd, so signals sent to this PID reach it.
#
#   with_trust.sh CA_FILE COMMAND...
set -euo pipefail
ca=$1
shift
exec unshare --mount --propagation private \
	sh -c 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"' "$ca" "$@"
