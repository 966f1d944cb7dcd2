package secretdtest

import (
	"strings"
	"testing"
)

func TestStuckGoroutines(t *testing.T) {
	dump := `goroutine 1 [running]:
main.main()
	/src/main.go:10 +0x1

goroutine 7 [chan receive, 15 minutes]:
github.com/docker/docker/volume/service.(*VolumeStore).Get(0x1)
	/src/store.go:1 +0x1
main.handler()
	/src/h.go:2 +0x2

goroutine 8 [chan receive, 16 minutes]:
github.com/docker/docker/volume/service.(*VolumeStore).Get(0x2)
	/src/store.go:1 +0x1
main.handler()
	/src/h.go:3 +0x2

goroutine 9 [select, 2 minutes]:
net/http.(*persistConn).roundTrip(0x3)
	/src/transport.go:1 +0x1

goroutine 10 [IO wait]:
internal/poll.runtime_pollWait()
	/src/netpoll.go:1 +0x1
`
	got := StuckGoroutines(dump, 8)
	want := "2 goroutine(s) [chan receive, 15 minutes]:\n" +
		"  github.com/docker/docker/volume/service.(*VolumeStore).Get\n  main.handler\n" +
		"1 goroutine(s) [select, 2 minutes]:\n  net/http.(*persistConn).roundTrip\n"
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	if got := StuckGoroutines(dump, 1); !strings.HasSuffix(got, "(1 more groups)\n") {
		t.Errorf("limited to 1 group:\n%s", got)
	}
	if got := StuckGoroutines("goroutine 1 [running]:\nmain.main()\n", 8); got != "no goroutine blocked for a minute or more" {
		t.Errorf("nothing stuck: %q", got)
	}
}
