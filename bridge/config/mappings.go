package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/scimbridge/scimbridge/mapping"
)

// validateMappings checks the attribute maps and templates of the provisioners, so that
// check-config catches them: each key must be a SCIM attribute path the target can take and
// each template must compile. Every problem is reported, naming provisioner and key:
// `provisioner "okta": user_mapping.userName: template: …`.
func validateMappings(c *Config) []error {
	var errs []error
	// The inbound attribute maps, with the declared extensions, as serve will build them.
	exts := c.Inbound.MappingExtensions()
	um, uerr := mapping.NewUserMap(c.Inbound.UserAttributes, exts...)
	if uerr != nil {
		for _, e := range mappingErrors(uerr) {
			errs = append(errs, fmt.Errorf("inbound.user_attributes: %s", e))
		}
	}
	gm, gerr := mapping.NewGroupMap(c.Inbound.GroupAttributes)
	if gerr != nil {
		for _, e := range mappingErrors(gerr) {
			errs = append(errs, fmt.Errorf("inbound.group_attributes: %s", e))
		}
	}
	// Sensitive LDAP attributes, by name or OID, in the user and group maps and in the
	// extensions alike.
	if uerr == nil {
		for _, sm := range mapping.SensitiveMappings(c.Inbound.AllowSensitiveAttributes, um.Mappings()) {
			key := "inbound.user_attributes"
			if strings.HasPrefix(strings.ToLower(sm.Key), "urn:") && !strings.HasPrefix(sm.Key, mapping.EnterpriseSchemaURN) {
				key = "inbound.extension"
			}
			errs = append(errs, fmt.Errorf("%s: %q → %s: refused: %s; name it in inbound.allow_sensitive_attributes to map it all the same", key, sm.Key, sm.Attr, sm.Why))
		}
	}
	if gerr == nil {
		for _, sm := range mapping.SensitiveMappings(c.Inbound.AllowSensitiveAttributes, gm.Mappings()) {
			errs = append(errs, fmt.Errorf("inbound.group_attributes: %q → %s: refused: %s; name it in inbound.allow_sensitive_attributes to map it all the same", sm.Key, sm.Attr, sm.Why))
		}
	}
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
		if gm := nonEmpty(p.GroupMapping); len(gm) > 0 {
			if _, err := mapping.CompileGroupMapping(gm); err != nil {
				for _, e := range mappingErrors(err) {
					errs = append(errs, fmt.Errorf("%s: %s", label, e))
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

// MappingExtensions converts the declared [[inbound.extension]] schemas for the mapping package.
func (in Inbound) MappingExtensions() []mapping.ExtensionSchema {
	var out []mapping.ExtensionSchema
	for _, e := range in.Extensions {
		x := mapping.ExtensionSchema{URN: e.URN}
		for _, a := range e.Attributes {
			x.Attributes = append(x.Attributes, mapping.ExtAttr{Name: a.Name, Type: a.Type, MultiValued: a.MultiValued, LDAP: a.LDAP})
		}
		out = append(out, x)
	}
	return out
}
