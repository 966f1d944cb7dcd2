package server_test

import (
	"testing"
	"time"
)

// TestInUseCheckOutsideTransaction: `secret rm` asks the engine which
// containers use the secret before it opens the store's write
// transaction, so an engine that hangs holds up that rm only, never the
// other writes. (The old code asked inside the transaction.)
func TestInUseCheckOutsideTransaction(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.create("first", nil, e.canary("first"))
	e.tasks.mu.Lock()
	e.tasks.hang, e.tasks.entered = make(chan struct{}), make(chan struct{}, 1)
	e.tasks.mu.Unlock()
	removed := make(chan response, 1)
	go func() { removed <- e.do("DELETE", "/v1.41/secrets/first", nil) }()
	<-e.tasks.entered
	created := make(chan struct{})
	go func() {
		defer close(created)
		e.create("second", nil, e.canary("second"))
	}()
	// Only a hang detector: the create returns at once unless it waits
	// for the rm's check.
	select {
	case <-created:
	case <-time.After(30 * time.Second):
		close(e.tasks.hang)
		<-created
		<-removed
		t.Fatal("secret create waited for the in-use check of another secret's rm")
	}
	close(e.tasks.hang)
	if r := <-removed; r.code != 204 {
		t.Errorf("rm after the check: %d %s", r.code, r.body)
	}
}
