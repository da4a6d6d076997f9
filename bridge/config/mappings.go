package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/scimbridge/scimbridge/mapping"
)

// groupMappingKeys are the group attributes a group_mapping may set: members are pushed as
// deltas by the engine, never rendered.
var groupMappingKeys = []string{"displayName", "externalId"}

// validateMappings checks the attribute maps and templates of the provisioners, so that
// check-config catches them: each key must be a SCIM attribute path the target can take and
// each template must compile. Every problem is reported, naming provisioner and key:
// `provisioner "okta": user_mapping.userName: template: …`.
func validateMappings(c *Config) []error {
	var errs []error
	for i, p := range c.Provisioners {
		label := fmt.Sprintf("provisioner[%d]", i)
		if p.Name != "" {
			label = fmt.Sprintf("provisioner %q", p.Name)
		}
		if um := nonEmpty(p.UserMapping); len(um) > 0 {
			if _, err := mapping.CompileUserMapping(um); err != nil {
				for _, e := range mappingErrors(err) {
					errs = append(errs, fmt.Errorf("%s: %s", label, e))
				}
			}
		}
		gm := nonEmpty(p.GroupMapping)
		for k := range gm {
			if !strings.HasPrefix(strings.ToLower(k), "urn:") && !containsFold(groupMappingKeys, k) {
				errs = append(errs, fmt.Errorf("%s: group_mapping.%s: not a group attribute the bridge pushes (want %s, or an extension urn:…)", label, k, quoteList(groupMappingKeys)))
				delete(gm, k)
			}
		}
		if len(gm) > 0 {
			if _, err := mapping.CompileUserMapping(gm); err != nil {
				for _, e := range mappingErrors(err) {
					errs = append(errs, fmt.Errorf("%s: %s", label, strings.Replace(e, "user_mapping.", "group_mapping.", 1)))
				}
			}
		}
	}
	return errs
}

// nonEmpty drops keys whose template is empty: they remove a default mapping.
func nonEmpty(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.TrimSpace(v) != "" {
			out[k] = v
		}
	}
	return out
}

// mappingErrors splits the compiler's joined error into one line per key, without the
// package prefix.
func mappingErrors(err error) []string {
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	var out []string
	for _, e := range unjoin(err) {
		for _, line := range strings.Split(e.Error(), "\n") {
			if line = strings.TrimSpace(strings.TrimPrefix(line, "mapping: ")); line != "" {
				out = append(out, line)
			}
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
