// Command mobyclient drives secretd's Docker-shaped API with the Docker Go
// client of docker CLI 29 (github.com/moby/moby/client), as a program
// built on it would: ping with version negotiation, create, list with
// filters, inspect, label update, remove. It is built twice by
// api/server's TestMobyClient, against go.mod (the newest client) and
// client-v0.2.2.mod (the client of docker CLI 29.0-29.2), and prints what
// the client returned as one JSON object for the test to check.
//
// The secrets' data comes on stdin, never in the arguments.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// report is what the client saw; Fatal is set when a step that the next
// ones need failed.
type report struct {
	Fatal           string              `json:",omitempty"`
	PingAPIVersion  string              // the server's Api-Version
	ClientVersion   string              // the version negotiated
	SwarmManager    bool                // from the Swarm header
	Created         map[string]string   // name -> ID
	Lists           map[string][]string // filter -> names, sorted
	InspectName     string
	InspectLabels   map[string]string
	InspectHasData  bool
	UpdatedLabels   map[string]string
	StaleUpdate     string // the error of an update at a stale version
	RemovedByPrefix bool
	RemoveAgain     string // the error of removing it again
	RemoveNotFound  bool   // whether that error is a not-found
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mobyclient unix:///path/to/secretd.sock < data.json")
		os.Exit(2)
	}
	var data map[string][]byte // name -> secret data
	if err := json.NewDecoder(os.Stdin).Decode(&data); err != nil {
		fmt.Fprintln(os.Stderr, "read the secrets' data from stdin:", err)
		os.Exit(2)
	}
	r := run(os.Args[1], data)
	json.NewEncoder(os.Stdout).Encode(r)
	if r.Fatal != "" {
		os.Exit(1)
	}
}

func run(host string, data map[string][]byte) (r report) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		r.Fatal = err.Error()
		return r
	}
	defer c.Close()
	ping, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		r.Fatal = "ping: " + err.Error()
		return r
	}
	r.PingAPIVersion, r.ClientVersion = ping.APIVersion, c.ClientVersion()
	r.SwarmManager = ping.SwarmStatus != nil && ping.SwarmStatus.ControlAvailable

	labels := map[string]map[string]string{"db_password": {"team": "a", "tier": "db"}, "api_key": {"team": "b"}}
	r.Created = map[string]string{}
	for _, name := range []string{"db_password", "api_key"} {
		res, err := c.SecretCreate(ctx, client.SecretCreateOptions{Spec: swarm.SecretSpec{
			Annotations: swarm.Annotations{Name: name, Labels: labels[name]}, Data: data[name],
		}})
		if err != nil {
			r.Fatal = "create " + name + ": " + err.Error()
			return r
		}
		r.Created[name] = res.ID
	}

	r.Lists = map[string][]string{}
	for key, f := range map[string]client.Filters{
		"":             nil,
		"name=db":      make(client.Filters).Add("name", "db"),
		"label=team":   make(client.Filters).Add("label", "team"),
		"label=team=b": make(client.Filters).Add("label", "team=b"),
		"id=prefix":    make(client.Filters).Add("id", r.Created["api_key"][:8]),
	} {
		res, err := c.SecretList(ctx, client.SecretListOptions{Filters: f})
		if err != nil {
			r.Fatal = "list " + key + ": " + err.Error()
			return r
		}
		r.Lists[key] = names(res.Items)
	}

	ins, err := c.SecretInspect(ctx, "db_password", client.SecretInspectOptions{})
	if err != nil {
		r.Fatal = "inspect: " + err.Error()
		return r
	}
	r.InspectName, r.InspectLabels, r.InspectHasData = ins.Secret.Spec.Name, ins.Secret.Spec.Labels, len(ins.Secret.Spec.Data) > 0

	spec := ins.Secret.Spec
	spec.Labels = map[string]string{"team": "c", "rotated": "yes"}
	if _, err := c.SecretUpdate(ctx, ins.Secret.ID, client.SecretUpdateOptions{Version: ins.Secret.Version, Spec: spec}); err != nil {
		r.Fatal = "update: " + err.Error()
		return r
	}
	after, err := c.SecretInspect(ctx, ins.Secret.ID[:10], client.SecretInspectOptions{})
	if err != nil {
		r.Fatal = "inspect after update: " + err.Error()
		return r
	}
	r.UpdatedLabels = after.Secret.Spec.Labels
	if _, err := c.SecretUpdate(ctx, "db_password", client.SecretUpdateOptions{Version: ins.Secret.Version, Spec: spec}); err != nil {
		r.StaleUpdate = err.Error()
	}

	if _, err := c.SecretRemove(ctx, r.Created["api_key"][:12], client.SecretRemoveOptions{}); err != nil {
		r.Fatal = "remove: " + err.Error()
		return r
	}
	r.RemovedByPrefix = true
	if _, err := c.SecretRemove(ctx, "api_key", client.SecretRemoveOptions{}); err != nil {
		r.RemoveAgain, r.RemoveNotFound = err.Error(), cerrdefs.IsNotFound(err)
	}
	res, err := c.SecretList(ctx, client.SecretListOptions{})
	if err != nil {
		r.Fatal = "list after remove: " + err.Error()
		return r
	}
	r.Lists["after remove"] = names(res.Items)
	return r
}

func names(list []swarm.Secret) []string {
	out := []string{}
	for _, s := range list {
		out = append(out, s.Spec.Name)
	}
	slices.Sort(out)
	return out
}
