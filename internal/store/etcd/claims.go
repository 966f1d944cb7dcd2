package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultClaimsTTL is how long a host's claims outlive the host: its lease
// is kept alive every third of it.
const DefaultClaimsTTL = 10 * time.Second

// opsPerTxn stays under etcd's default --max-txn-ops of 128.
const opsPerTxn = 100

// Claims publishes one host's entries (opaque values by key) under
// PREFIX/claims/HOST/, attached to a lease the host keeps alive: when the
// host dies, its entries vanish when the lease expires, and every host
// reads every host's entries.
type Claims struct {
	b    *Backend
	host string
	ttl  time.Duration
	dir  string

	mu   sync.Mutex
	want map[string][]byte
	kick chan struct{}
}

// Claims returns host's claims registry; Run publishes it.
func (b *Backend) Claims(host string, ttl time.Duration) (*Claims, error) {
	if host == "" || strings.ContainsAny(host, "/\x00") {
		return nil, fmt.Errorf("invalid host ID %q: it must not be empty or contain '/'", host)
	}
	if ttl < 2*time.Second {
		ttl = DefaultClaimsTTL
	}
	return &Claims{b: b, host: host, ttl: ttl, dir: b.prefix + "claims/", kick: make(chan struct{}, 1)}, nil
}

// Set replaces what this host publishes; Run writes the difference soon
// after. It never blocks on the cluster.
func (c *Claims) Set(entries map[string][]byte) {
	c.mu.Lock()
	c.want = maps.Clone(entries)
	if c.want == nil {
		c.want = map[string][]byte{}
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// List returns every host's entries, by host and key.
func (c *Claims) List(ctx context.Context) (map[string]map[string][]byte, error) {
	gctx, cancel := c.b.call(ctx)
	defer cancel()
	resp, err := c.b.cli.Get(gctx, c.dir, clientv3.WithPrefix())
	if err != nil {
		return nil, c.b.unavailable(err)
	}
	out := map[string]map[string][]byte{}
	for _, kv := range resp.Kvs {
		host, key, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), c.dir), "/")
		if !ok {
			continue
		}
		if out[host] == nil {
			out[host] = map[string][]byte{}
		}
		out[host][key] = kv.Value
	}
	return out, nil
}

// Run keeps this host's lease alive and its entries published until ctx
// ends. When the lease is lost (the cluster was unreachable for longer
// than the TTL), it takes a new one and publishes everything again; broke
// hears of every failure.
func (c *Claims) Run(ctx context.Context, broke func(error)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := c.session(ctx, broke)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > c.ttl {
			backoff = 100 * time.Millisecond
		}
		if broke != nil {
			broke(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.ttl/2)
	}
}

// session holds one lease until it is lost.
func (c *Claims) session(ctx context.Context, broke func(error)) error {
	gctx, cancel := c.b.call(ctx)
	lease, err := c.b.cli.Grant(gctx, int64(c.ttl/time.Second))
	cancel()
	if err != nil {
		return c.b.unavailable(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	alive, err := c.b.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return c.b.unavailable(err)
	}
	// nil: what an earlier session (or a previous run of this host) left
	// under other leases is removed by the first publish.
	var published map[string][]byte
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	dirty := true
	for {
		if dirty {
			if err := c.publish(ctx, lease.ID, &published); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if broke != nil {
					broke(err)
				}
			} else {
				dirty = false
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-alive:
			if !ok {
				return errors.New("the claims lease expired or could not be kept alive")
			}
		case <-c.kick:
			dirty = true
		case <-retry.C:
		}
	}
}

// publish writes what changed since the last publish, in transactions of
// bounded size.
func (c *Claims) publish(ctx context.Context, lease clientv3.LeaseID, published *map[string][]byte) error {
	c.mu.Lock()
	want := c.want
	c.mu.Unlock()
	if want == nil {
		return nil // nothing computed yet: publishing nothing would drop the old claims
	}
	mine := c.dir + c.host + "/"
	if *published == nil {
		// Its own request: etcd refuses a transaction whose puts fall in
		// a range it also deletes.
		dctx, cancel := c.b.call(ctx)
		_, err := c.b.cli.Delete(dctx, mine, clientv3.WithPrefix())
		cancel()
		if err != nil {
			return c.b.unavailable(err)
		}
		*published = map[string][]byte{}
	}
	var ops []clientv3.Op
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if old, ok := (*published)[k]; !ok || !bytes.Equal(old, want[k]) {
			ops = append(ops, clientv3.OpPut(mine+k, string(want[k]), clientv3.WithLease(lease)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(*published)) {
		if _, ok := want[k]; !ok {
			ops = append(ops, clientv3.OpDelete(mine+k))
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), opsPerTxn)
		tctx, cancel := c.b.call(ctx)
		_, err := c.b.cli.Txn(tctx).Then(ops[:n]...).Commit()
		cancel()
		if err != nil {
			// Which of them landed is unknown: next time, start over.
			*published = nil
			return c.b.unavailable(err)
		}
		ops = ops[n:]
	}
	*published = maps.Clone(want)
	return nil
}
