package bridge

import (
	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/targets"
	"github.com/scimbridge/scimbridge/targets/logtarget"
	"github.com/scimbridge/scimbridge/targets/scim"
)

// Targets is the registry of target types a [[provisioner]] can name in `type`. It is an
// explicit map, not init() side effects, so that what the binary supports is read here.
var Targets = config.Registry{
	"scim": func() targets.Config { return scim.NewConfig() },
	"log":  func() targets.Config { return logtarget.NewConfig() },
}

// LoadConfig loads and validates a configuration file with the built-in target types.
func LoadConfig(path string) (*config.Config, error) { return config.Load(path, Targets) }
