package bridge

import (
	"context"
	"fmt"

	"github.com/scimbridge/scimbridge/bridge/config"
	"github.com/scimbridge/scimbridge/ldapstore"
)

// ApplyDialect settles cfg's dialect-dependent defaults ([ldap.users] and [ldap.groups] left
// unset, with ldap.dialect = "auto") with the dialect store detected from the directory's
// root DSE. Every configuration that meets a directory goes through it before it is used.
func ApplyDialect(ctx context.Context, cfg *config.Config, store *ldapstore.Store) error {
	d, err := store.Dialect(ctx)
	if err != nil {
		return fmt.Errorf("bridge: reading the directory's dialect: %w", err)
	}
	cfg.ApplyDialect(string(d))
	return nil
}
