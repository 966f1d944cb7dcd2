package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

// blockingTasks answers Users only when the request's context ends, as a
// controller waiting on an engine that does not answer.
type blockingTasks struct{}

func (blockingTasks) Users(ctx context.Context, _ store.Secret) ([]string, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (blockingTasks) Tasks() []api.Task { return nil }

// serve runs a Server configured by cfg on a loopback listener.
func serve(t *testing.T, cfg server.Config) (addr string, st *store.Store) {
	t.Helper()
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err = store.Open(b, store.Config{KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store, cfg.Version = st, "test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { server.New(cfg).Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String(), st
}

// A client that sends its headers and then trickles (or stalls) its body
// is cut off: it cannot hold a connection and a goroutine for ever.
func TestServerCutsOffStalledBody(t *testing.T) {
	addr, _ := serve(t, server.Config{ReadTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /secrets/create HTTP/1.1\r\nHost: secretd\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"Name\":")
	// Far beyond the read timeout: a bound on the test, not a measure.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.ReadAll(bufio.NewReader(c))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server still holds a connection whose body stalled")
	}
}

// A request waiting on something that does not answer ends at its
// deadline with a clear 503, and nothing is removed.
func TestHandlerDeadline(t *testing.T) {
	addr, st := serve(t, server.Config{Tasks: blockingTasks{}, HandlerTimeout: 200 * time.Millisecond})
	if _, err := st.Create(store.Spec{Name: "held", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("DELETE", "http://"+addr+"/v1.41/secrets/held", nil)
	cl := &http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("DELETE while the in-use check hangs: %v (the server never answered)", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "gave up on this request after its deadline") {
		t.Fatalf("DELETE while the in-use check hangs: %d %s", resp.StatusCode, body)
	}
	if _, err := st.Get("held"); err != nil {
		t.Fatalf("the secret is gone after a request that gave up: %v", err)
	}
}
