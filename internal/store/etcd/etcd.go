// Package etcd is the store backend several hosts share: records live in an
// etcd cluster under a key prefix, written with transactions that compare
// revisions, so two hosts updating one secret at once never lose an update.
// It only ever sees ciphertext: the Store encrypts above it.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretd/secretd/internal/store"
)

// DefaultPrefix is where secretd's keys live unless told otherwise.
const DefaultPrefix = "/secretd/"

// DefaultTimeout bounds every call to the cluster, so a cluster without
// quorum gives an error instead of a hang.
const DefaultTimeout = 5 * time.Second

// maxRequestBytes is the largest request the client sends: far above any
// cluster's --max-request-bytes, which is the limit that counts.
const maxRequestBytes = 64 << 20

// maxAttempts bounds how often Update runs fn again after losing a race to
// another host's write.
const maxAttempts = 30

// Options says which cluster to use and how.
type Options struct {
	// Endpoints are the members' client addresses, host:port.
	Endpoints []string
	// TLS, when set, is used for every connection to the cluster.
	TLS *tls.Config
	// Prefix is put before every key; DefaultPrefix when empty.
	Prefix string
	// Timeout bounds each call; DefaultTimeout when zero.
	Timeout time.Duration
}

// Backend is a store.Backend over an etcd cluster.
type Backend struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	where   string

	// writeMu keeps this process's own writers from racing each other, so
	// Update only ever retries against other hosts.
	writeMu sync.Mutex

	known known
}

var (
	_ store.Backend    = (*Backend)(nil)
	_ store.Watcher    = (*Backend)(nil)
	_ store.Prefetcher = (*tx)(nil)
)

// Open connects to the cluster. It does not wait for an answer: the first
// transaction tells whether the cluster is there.
func Open(opts Options) (*Backend, error) {
	if len(opts.Endpoints) == 0 {
		return nil, fmt.Errorf("no etcd endpoints: give --store etcd://host:port[,host:port...]")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		TLS:         opts.TLS,
		DialTimeout: opts.Timeout,
		// Keepalive pings find a dead member within seconds, not at the
		// next TCP timeout.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		// Errors reach secretd's log through the calls that fail; the
		// client's own retry chatter would only repeat them.
		Logger: zap.NewNop(),
		// The cluster's --max-request-bytes decides how large a record
		// may be, with a message saying so; the client's own default cap
		// (2 MiB) would refuse a large record first, as if the cluster
		// were down.
		MaxCallSendMsgSize: maxRequestBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	return &Backend{cli: cli, prefix: opts.Prefix, timeout: opts.Timeout, where: strings.Join(opts.Endpoints, ",")}, nil
}

// Close implements store.Backend.
func (b *Backend) Close() error { return b.cli.Close() }

// Client is the underlying client, for what lives beside the store (claims).
func (b *Backend) Client() *clientv3.Client { return b.cli }

// Prefix is the key prefix in use.
func (b *Backend) Prefix() string { return b.prefix }

// call returns a context for one request: bounded, and refused by a member
// that has lost its leader rather than queued until quorum returns.
func (b *Backend) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(ctx), b.timeout)
}

// unavailable turns a cluster error into one the API maps to 503, saying
// what to do about it.
func (b *Backend) unavailable(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return store.Errorf(store.ErrInvalid, "the etcd cluster at %s refused a transaction with too many operations: start its members with a higher --max-txn-ops (one operation per secret is needed to rotate the KEK)", b.where)
	case errors.Is(err, rpctypes.ErrRequestTooLarge), status.Code(err) == codes.ResourceExhausted:
		// A request far above --max-request-bytes is refused by the
		// member's gRPC limit before etcd sees it.
		return store.Errorf(store.ErrInvalid, "the etcd cluster at %s refused a record as too large: start its members with a higher --max-request-bytes, or keep fewer versions (--keep)", b.where)
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("the etcd cluster at %s refused secretd's request: %w: give secretd a client certificate etcd accepts", b.where, err)
	}
	return store.Errorf(store.ErrUnavailable, "secretd cannot reach its store: the etcd cluster at %s has no quorum or does not answer (%v): start its stopped members so that most of them run", b.where, err)
}

func (b *Backend) key(bucket, key string) (string, error) {
	if !slices.Contains(store.Buckets, bucket) {
		return "", fmt.Errorf("the store has no bucket %q", bucket)
	}
	if key == "" {
		return "", fmt.Errorf("empty key in bucket %s", bucket)
	}
	return b.prefix + bucket + "/" + key, nil
}

// deletions is a key bumped by every transaction that deletes from bucket:
// a range compare sees changed and new keys but not vanished ones, and a
// transaction that iterated the bucket must not commit after a deletion.
func (b *Backend) deletions(bucket string) string { return b.prefix + "deletions/" + bucket }

// View implements store.Backend: every read sees the cluster at the
// revision of the first one.
func (b *Backend) View(fn func(store.Tx) error) error {
	return fn(&tx{b: b})
}

// Update implements store.Backend with an optimistic transaction: reads are
// remembered with their revisions and the writes commit only if none of
// what was read changed since; otherwise fn runs again on fresh reads.
//
// The first attempt reads what it can from what this host knows (see
// known) without asking the cluster: the commit compares those keys as it
// compares the rest, so an out-of-date one makes it lose, never commit.
// When it loses, or fn fails on what it read, fn runs again on the
// cluster's answers alone, so no error comes from what this host knew.
func (b *Backend) Update(fn func(store.Tx) error) error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	fresh := false
	for attempt := 1; ; attempt++ {
		t := &tx{b: b, write: true, fresh: fresh, reads: map[string]int64{}, ranges: map[string]bool{}, writes: map[string]write{}}
		err := fn(t)
		lost := false
		if err == nil {
			var ok bool
			ok, err = t.commit()
			if err == nil && ok {
				return nil
			}
			lost = err == nil
		}
		// Every attempt after the first asks the cluster.
		fresh = true
		if len(t.known) > 0 && (lost || err != nil && !errors.Is(err, store.ErrUnavailable)) {
			b.known.forget(t.known)
			attempt-- // not a race lost to another host
			continue
		}
		if err != nil && !errors.Is(err, errStale) {
			return err
		}
		if attempt == maxAttempts {
			return store.Errorf(store.ErrUnavailable, "the store is busy: %d writes in a row lost to other hosts writing the same records: try again", maxAttempts)
		}
		// Jitter, so two hosts that keep colliding stop doing so in step.
		time.Sleep(time.Duration(rand.Int64N(int64(attempt)*int64(5*time.Millisecond)) + 1))
	}
}

// errStale marks a read at a revision the cluster has compacted away; the
// transaction starts again at the present one.
var errStale = errors.New("read revision was compacted")

type write struct {
	value  []byte
	delete bool
}

type tx struct {
	b     *Backend
	write bool
	// fresh reads every key from the cluster; otherwise a write
	// transaction takes what this host knows, listed in known.
	fresh bool
	known []string
	// fetched is what Prefetch fetched, by key (nil: absent).
	fetched map[string]*mvccpb.KeyValue
	// rev is the revision every read sees; 0 until the first read.
	rev    int64
	reads  map[string]int64 // key -> ModRevision seen (0: absent)
	ranges map[string]bool  // buckets iterated
	writes map[string]write
}

func (t *tx) get(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := t.b.call(context.Background())
	defer cancel()
	var resp *clientv3.GetResponse
	var err error
	if t.rev != 0 {
		// The revision of the first read is in the past of every member
		// that has applied it, which answers from its own state, without
		// the round of the leader a linearizable read costs; a member
		// that has not yet is asked again, the leader's way.
		resp, err = t.b.cli.Get(ctx, key, append(opts, clientv3.WithRev(t.rev), clientv3.WithSerializable())...)
		if errors.Is(err, rpctypes.ErrFutureRev) {
			resp, err = t.b.cli.Get(ctx, key, append(opts, clientv3.WithRev(t.rev))...)
		}
	} else {
		resp, err = t.b.cli.Get(ctx, key, opts...)
	}
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) && t.write {
			return nil, errStale
		}
		return nil, t.b.unavailable(err)
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

func (t *tx) Get(bucket, key string) ([]byte, error) {
	k, err := t.b.key(bucket, key)
	if err != nil {
		return nil, err
	}
	if w, ok := t.writes[k]; ok {
		if w.delete {
			return nil, nil
		}
		return slices.Clone(w.value), nil
	}
	if v, mod, ok := t.knownValue(k); ok {
		t.reads[k] = mod
		t.known = append(t.known, k)
		return v, nil
	}
	kv, ok := t.fetched[k]
	if !ok {
		resp, err := t.get(k)
		if err != nil {
			return nil, err
		}
		kv = nil
		if len(resp.Kvs) > 0 {
			kv = resp.Kvs[0]
		}
		t.saw(k, kv)
	}
	var mod int64
	var v []byte
	if kv != nil {
		mod, v = kv.ModRevision, slices.Clone(kv.Value)
		if v == nil {
			v = []byte{}
		}
	}
	if _, seen := t.reads[k]; !seen && t.write {
		t.reads[k] = mod
	}
	return v, nil
}

// knownValue is what a write transaction takes of k from what this host
// knows (see Update); false when it asks the cluster.
func (t *tx) knownValue(k string) ([]byte, int64, bool) {
	if _, seen := t.reads[k]; seen || !t.write || t.fresh {
		return nil, 0, false
	}
	return t.b.known.get(k)
}

// saw records the cluster's answer for k (kv nil: absent) at the
// transaction's revision.
func (t *tx) saw(k string, kv *mvccpb.KeyValue) {
	if kv == nil {
		t.b.saw(k, nil, 0, t.rev)
		return
	}
	v := kv.Value
	if v == nil {
		v = []byte{}
	}
	t.b.saw(k, v, kv.ModRevision, t.rev)
}

// Prefetch implements store.Prefetcher: one read-only etcd transaction
// gets every key not yet read, written or known, at the transaction's
// revision (the first read's sets it).
func (t *tx) Prefetch(keys ...store.Key) error {
	var want []string
	for _, key := range keys {
		k, err := t.b.key(key.Bucket, key.Key)
		if err != nil {
			return err
		}
		_, written := t.writes[k]
		_, read := t.reads[k]
		_, fetched := t.fetched[k]
		_, _, known := t.knownValue(k)
		if !written && !read && !fetched && !known && !slices.Contains(want, k) {
			want = append(want, k)
		}
	}
	if len(want) < 2 {
		return nil // a Get costs the same
	}
	ops := make([]clientv3.Op, len(want))
	for i, k := range want {
		var opts []clientv3.OpOption
		if t.rev != 0 {
			opts = append(opts, clientv3.WithRev(t.rev))
		}
		ops[i] = clientv3.OpGet(k, opts...)
	}
	ctx, cancel := t.b.call(context.Background())
	defer cancel()
	resp, err := t.b.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) && t.write {
			return errStale
		}
		return t.b.unavailable(err)
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	if t.fetched == nil {
		t.fetched = map[string]*mvccpb.KeyValue{}
	}
	for i, k := range want {
		var kv *mvccpb.KeyValue
		if r := resp.Responses[i].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			kv = r.Kvs[0]
		}
		t.fetched[k] = kv
		t.saw(k, kv)
	}
	return nil
}

// Guess implements store.Prefetcher from what this host knows.
func (t *tx) Guess(bucket, key string) ([]byte, bool) {
	k, err := t.b.key(bucket, key)
	if err != nil {
		return nil, false
	}
	v, _, ok := t.b.known.get(k)
	return v, ok && v != nil
}

func (t *tx) Put(bucket, key string, value []byte) error {
	if !t.write {
		return fmt.Errorf("write to bucket %s in a read-only transaction", bucket)
	}
	k, err := t.b.key(bucket, key)
	if err != nil {
		return err
	}
	t.writes[k] = write{value: slices.Clone(value)}
	return nil
}

func (t *tx) Delete(bucket, key string) error {
	if !t.write {
		return fmt.Errorf("delete from bucket %s in a read-only transaction", bucket)
	}
	k, err := t.b.key(bucket, key)
	if err != nil {
		return err
	}
	t.writes[k] = write{delete: true}
	return nil
}

func (t *tx) ForEach(bucket string, fn func(string, []byte) error) error {
	if !slices.Contains(store.Buckets, bucket) {
		return fmt.Errorf("the store has no bucket %q", bucket)
	}
	pfx := t.b.prefix + bucket + "/"
	resp, err := t.get(pfx, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	if t.write {
		t.ranges[bucket] = true
	}
	kv := map[string][]byte{}
	for _, x := range resp.Kvs {
		kv[string(x.Key)] = x.Value
	}
	for k, w := range t.writes {
		if strings.HasPrefix(k, pfx) {
			if w.delete {
				delete(kv, k)
			} else {
				kv[k] = slices.Clone(w.value)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		v := kv[k]
		if v == nil {
			v = []byte{}
		}
		if err := fn(strings.TrimPrefix(k, pfx), v); err != nil {
			return err
		}
	}
	return nil
}

// commit writes the buffered changes if nothing read has changed since;
// false means another writer got in first.
func (t *tx) commit() (bool, error) {
	if len(t.writes) == 0 {
		return true, nil
	}
	var cmps []clientv3.Cmp
	for k, mod := range t.reads {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", mod))
	}
	for bucket := range t.ranges {
		cmps = append(cmps,
			clientv3.Compare(clientv3.ModRevision(t.b.prefix+bucket+"/").WithPrefix(), "<", t.rev+1),
			clientv3.Compare(clientv3.ModRevision(t.b.deletions(bucket)), "<", t.rev+1))
	}
	var ops []clientv3.Op
	deleted := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(t.writes)) {
		w := t.writes[k]
		if w.delete {
			ops = append(ops, clientv3.OpDelete(k))
			bucket, _, _ := strings.Cut(strings.TrimPrefix(k, t.b.prefix), "/")
			deleted[bucket] = true
		} else {
			ops = append(ops, clientv3.OpPut(k, string(w.value)))
		}
	}
	for _, bucket := range slices.Sorted(maps.Keys(deleted)) {
		ops = append(ops, clientv3.OpPut(t.b.deletions(bucket), ""))
	}
	ctx, cancel := t.b.call(context.Background())
	defer cancel()
	resp, err := t.b.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, t.b.unavailable(err)
	}
	if resp.Succeeded {
		rev := resp.Header.Revision
		for k, w := range t.writes {
			if w.delete {
				t.b.saw(k, nil, 0, rev) // an absent key's ModRevision
			} else {
				t.b.saw(k, w.value, rev, rev)
			}
		}
	}
	return resp.Succeeded, nil
}

// Watch implements store.Watcher: the bucket's keys at one revision, then
// every change after it, so nothing falls between the two. A member that
// loses its leader ends the watch (rather than going quiet), and the caller
// watches again, through whichever member has quorum.
func (b *Backend) Watch(ctx context.Context, bucket string, fn func(key string, value []byte)) error {
	if !slices.Contains(store.Buckets, bucket) {
		return fmt.Errorf("the store has no bucket %q", bucket)
	}
	pfx := b.prefix + bucket + "/"
	gctx, cancel := b.call(ctx)
	resp, err := b.cli.Get(gctx, pfx, clientv3.WithPrefix())
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return b.unavailable(err)
	}
	for _, kv := range resp.Kvs {
		v := kv.Value
		if v == nil {
			v = []byte{} // nil would mean a deletion
		}
		b.saw(string(kv.Key), v, kv.ModRevision, resp.Header.Revision)
		fn(strings.TrimPrefix(string(kv.Key), pfx), v)
	}
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	for wr := range b.cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return b.unavailable(err)
		}
		for _, ev := range wr.Events {
			k := strings.TrimPrefix(string(ev.Kv.Key), pfx)
			if ev.Type == clientv3.EventTypeDelete {
				// Other hosts' writes keep what this host knows current.
				b.saw(string(ev.Kv.Key), nil, 0, ev.Kv.ModRevision)
				fn(k, nil)
				continue
			}
			v := ev.Kv.Value
			if v == nil {
				v = []byte{}
			}
			b.saw(string(ev.Kv.Key), v, ev.Kv.ModRevision, ev.Kv.ModRevision)
			fn(k, v)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return store.Errorf(store.ErrUnavailable, "the watch on the etcd cluster at %s ended", b.where)
}
