package daemoncmd

import (
	"github.com/spf13/pflag"

	"github.com/secretd/secretd/internal/daemon"
)

// addOpsFlags adds the flags of the operations side: metrics and the audit
// trail.
func addOpsFlags(f *pflag.FlagSet, cfg *daemon.Config) {
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9323; keep it on loopback (default off)")
	f.StringVar(&cfg.AuditLog, "audit-log", "", "audit trail: a file (JSON lines, mode 0600), '-' for stdout, or 'off' (default DATA-ROOT/audit.log)")
}
