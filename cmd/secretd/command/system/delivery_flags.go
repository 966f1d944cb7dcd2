package system

import (
	"github.com/spf13/pflag"

	"github.com/secretd/secretd/daemon"
)

func addDeliveryFlags(f *pflag.FlagSet, cfg *daemon.Config) {}
