package controller

import (
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/declaration"
)

// canonical is an entry as a volume's grants keep it.
func canonical(spec string) string {
	es, err := declaration.Parse(spec)
	if err != nil || len(es) != 1 {
		panic(spec)
	}
	return es[0].String()
}

// TestPlanGrants: what a live grant or revoke decides for each volume, and
// what it refuses, from the container, its volumes and the store alone.
func TestPlanGrants(t *testing.T) {
	vol := func(name, dest, decl string, opts ...string) mountedVolume {
		v := Volume{Name: name, Declaration: decl, BoundBy: BoundByOption, Options: map[string]string{}}
		for _, o := range opts {
			k, val, _ := strings.Cut(o, "=")
			v.Options[k] = val
		}
		return mountedVolume{v, dest}
	}
	mount := func(name string) container.MountPoint { return container.MountPoint{Type: "volume", Name: name} }
	self := container.Summary{ID: "c1", Names: []string{"/web"}, Mounts: []container.MountPoint{mount("run"), mount("etc")}}
	other := container.Summary{ID: "c2", Names: []string{"/api"}, Mounts: []container.MountPoint{mount("etc")}}
	stored := map[string][]int{"db": {1, 2}, "tls": {1}, "new": {1}}
	grantable := func(e declaration.Entry) error {
		vs, ok := stored[e.Source]
		if !ok {
			return fmt.Errorf("secret '%s' not found", e.Source)
		}
		if e.Version != 0 && e.Version > len(vs) {
			return fmt.Errorf("secret '%s' has no version %d", e.Source, e.Version)
		}
		return nil
	}
	two := []mountedVolume{vol("run", "/run/secrets", "db;tls"), vol("etc", "/etc/app", "tls")}
	for _, tc := range []struct {
		name string
		req  api.ContainerUpdateRequest
		mine []mountedVolume
		// want is each changed volume as name:grants/revokes, in order,
		// or the error's start.
		want, err string
	}{
		{"revoke from every volume holding it", api.ContainerUpdateRequest{SecretRm: []string{"tls"}, Shared: true}, two,
			"etc:[]/[tls] run:[]/[tls]", ""},
		{"revoke on the volume named", api.ContainerUpdateRequest{SecretRm: []string{"tls"}, Volume: "run"}, two,
			"run:[]/[tls]", ""},
		{"grant to /run/secrets", api.ContainerUpdateRequest{SecretAdd: []string{"new"}}, two,
			"run:[" + canonical("new") + "]/[]", ""},
		{"grant back a revoked entry undoes the revoke", api.ContainerUpdateRequest{SecretRm: []string{"db"}, SecretAdd: []string{"db"}}, two,
			"run:[]/[]", ""},
		{"grant to the only volume", api.ContainerUpdateRequest{SecretAdd: []string{"new"}}, []mountedVolume{vol("only", "/secrets", "db")},
			"only:[" + canonical("new") + "]/[]", ""},
		{"nothing of this driver", api.ContainerUpdateRequest{SecretAdd: []string{"new"}}, nil,
			"", "container web has no secretd volume"},
		{"a volume it does not mount", api.ContainerUpdateRequest{SecretAdd: []string{"new"}, Volume: "nope"}, two,
			"", "container web does not mount volume nope"},
		{"revoke of a secret it does not hold", api.ContainerUpdateRequest{SecretRm: []string{"new"}}, two,
			"", "secret 'new' is not granted to container web"},
		{"grant with no volume at /run/secrets", api.ContainerUpdateRequest{SecretAdd: []string{"new"}},
			[]mountedVolume{vol("a", "/a", "db"), vol("b", "/b", "tls")}, "", "container web has 2 secretd volumes and none at /run/secrets"},
		{"grant of an unknown secret", api.ContainerUpdateRequest{SecretAdd: []string{"nope"}}, two,
			"", "secret 'nope' not found"},
		{"grant of a version not kept", api.ContainerUpdateRequest{SecretAdd: []string{"source=db@3,target=old"}}, two,
			"", "secret 'db' has no version 3"},
		{"grant at a target taken", api.ContainerUpdateRequest{SecretAdd: []string{"source=new,target=db"}}, two,
			"", "volume run:"},
		{"a volume shared with another container", api.ContainerUpdateRequest{SecretRm: []string{"tls"}, Volume: "etc"}, two,
			"", "volume etc is shared with container api"},
		{"a one-file volume", api.ContainerUpdateRequest{SecretAdd: []string{"new"}},
			[]mountedVolume{vol("f", "/run/secrets", "source=db,target=db.conf", declaration.OptionFile+"=db.conf")}, "", "volume f holds the one file"},
	} {
		p, err := planGrants(tc.req, grantInput{self: self, list: []container.Summary{self, other}, mine: tc.mine, driver: "secretd", grantable: grantable})
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error starting %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, v := range p.changes {
			got = append(got, fmt.Sprintf("%s:%v/%v", v.Name, v.Grants, v.Revokes))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: changes %s, want %s", tc.name, strings.Join(got, " "), tc.want)
		}
		if p.task.ContainerID != "c1" || p.task.ContainerName != "web" {
			t.Errorf("%s: task %+v", tc.name, p.task)
		}
	}
}
