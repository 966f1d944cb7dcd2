package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
)

// listenMetrics opens --metrics-addr. The endpoint has no authentication;
// it shows counts only (no secret or container names), yet nothing outside
// the host needs it, so a non-loopback address gets a warning.
func listenMetrics(addr string, log *slog.Logger) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	if ap, err := netip.ParseAddrPort(l.Addr().String()); err != nil || !ap.Addr().IsLoopback() {
		log.Warn("metrics are served on a non-loopback address: keep --metrics-addr on 127.0.0.1 unless a firewall guards it", "addr", l.Addr().String())
	}
	return l, nil
}
