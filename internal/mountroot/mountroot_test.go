package mountroot

import (
	"strings"
	"testing"
)

func TestMountDir(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name   string
		record bool
		want   bool
	}{
		{id, false, true},
		{"spare.0f3a", false, true},
		{"shared.0f3a", false, true}, // Podman's shared mount made on demand
		{"shared.", false, false},
		{"m1", true, true}, // a mount ID of another shape, with its record
		{"m1", false, false},
		{"home", false, false},
		{id + ".task", false, false}, // a record's name is no mount's
		{strings.Repeat("AB", 32), false, false},
		{"spare.", false, false},
		{".secretd-noswap", false, false},
	} {
		if got := MountDir(c.name, c.record); got != c.want {
			t.Errorf("MountDir(%q, %v) = %v, want %v", c.name, c.record, got, c.want)
		}
	}
	if !Record(id+".task") || !Record("x.task.tmp") || Record(id) {
		t.Error("Record misreads task record names")
	}
	if !Marker(".secretd-noswap") || Marker("secretd") {
		t.Error("Marker misreads marker names")
	}
}
