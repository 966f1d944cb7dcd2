package controller

import "github.com/secretd/secretd/declaration"

// OnUpdate is what happens to a container after its secrets change.
type OnUpdate = declaration.OnUpdate

// ParseOnUpdate reads the secretd.on-update label; empty means none.
func ParseOnUpdate(v string) (OnUpdate, error) { return declaration.ParseOnUpdate(v) }

// OptionOnUpdate is the volume option that fixes a volume's on-update.
const OptionOnUpdate = declaration.OptionOnUpdate
