package daemoncmd

import (
	"github.com/spf13/pflag"

	"github.com/secretd/secretd/internal/daemon"
	etcdstore "github.com/secretd/secretd/internal/store/etcd"
)

// addStoreFlags adds the flags that choose the store's backend: the bolt
// file of one host, or an etcd cluster several hosts share.
func addStoreFlags(f *pflag.FlagSet, cfg *daemon.StoreConfig, withHost bool) {
	f.StringVar(&cfg.URL, "store", "", "where secrets are kept: bolt:///path/secrets.db, or etcd://host:port[,host:port...] for a store several hosts share (default bolt://DATA-ROOT/secrets.db)")
	f.StringVar(&cfg.EtcdCACert, "etcd-cacert", "", "CA that signed the etcd members' certificates (turns on TLS to etcd)")
	f.StringVar(&cfg.EtcdCert, "etcd-cert", "", "client certificate secretd presents to etcd")
	f.StringVar(&cfg.EtcdKey, "etcd-key", "", "key of the client certificate for etcd")
	f.StringVar(&cfg.EtcdPrefix, "etcd-prefix", "", "prefix of every key secretd writes to etcd (default "+etcdstore.DefaultPrefix+")")
	if withHost {
		f.StringVar(&cfg.HostID, "host-id", "", "name of this host among those sharing an etcd store, unique to it (default the hostname)")
	}
}
