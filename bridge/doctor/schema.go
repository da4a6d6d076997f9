package doctor

import (
	"context"
	"fmt"
	"sort"

	"github.com/scimbridge/scimbridge/bridge/capture"
	"github.com/scimbridge/scimbridge/bridge/outbound"
	"github.com/scimbridge/scimbridge/mapping"
)

// schemaUse is one place of the configuration that names an LDAP attribute or object class.
type schemaUse struct {
	where string // the configuration key
	name  string
	class bool // an object class rather than an attribute type
}

// schemaUses lists every attribute and object class the configuration makes the bridge read
// or write: the bases' naming and membership, the inbound attribute maps and extensions, the
// disable marker, and every provisioner's templates (defaults merged).
func (r *run) schemaUses() []schemaUse {
	cfg := r.cfg
	var uses []schemaUse
	add := func(where, name string, class bool) {
		if name != "" {
			uses = append(uses, schemaUse{where, name, class})
		}
	}
	for _, oc := range cfg.LDAP.Users.ObjectClasses {
		add("ldap.users.object_classes", oc, true)
	}
	for _, oc := range cfg.LDAP.Groups.ObjectClasses {
		add("ldap.groups.object_classes", oc, true)
	}
	add("ldap.users.rdn_attribute", cfg.LDAP.Users.RDNAttribute, false)
	add("ldap.groups.rdn_attribute", cfg.LDAP.Groups.RDNAttribute, false)
	add("ldap.groups.member_attribute", cfg.LDAP.Groups.MemberAttribute, false)
	idAttr := capture.IDAttribute(cfg, r.dse.Dialect)
	add("ldap.users.id_attribute", idAttr, false)
	if cfg.Inbound.Enabled {
		if um, err := mapping.NewUserMap(cfg.Inbound.UserAttributes, cfg.Inbound.MappingExtensions()...); err == nil {
			for path, attr := range um.Mappings() {
				add(fmt.Sprintf("inbound.user_attributes %q", path), attr, false)
			}
		}
		if gm, err := mapping.NewGroupMap(cfg.Inbound.GroupAttributes); err == nil {
			for path, attr := range gm.Mappings() {
				add(fmt.Sprintf("inbound.group_attributes %q", path), attr, false)
			}
		}
		if cfg.Inbound.Disable == "attribute" {
			add("inbound.disable", mapping.DefaultActiveMarker().Attr, false)
		}
	}
	for _, p := range cfg.Provisioners {
		um := outbound.MergeMapping(mapping.DefaultUserMapping(idAttr, mapping.DefaultActiveMarker()), p.UserMapping)
		if tm, err := mapping.CompileUserMapping(um); err == nil {
			for _, a := range tm.Attributes() {
				add(fmt.Sprintf("provisioner %q: user_mapping", p.Name), a, false)
			}
		}
		if p.PushGroups {
			gm := outbound.MergeMapping(mapping.DefaultGroupMapping(idAttr), p.GroupMapping)
			if tm, err := mapping.CompileGroupMapping(gm); err == nil {
				for _, a := range tm.Attributes() {
					add(fmt.Sprintf("provisioner %q: group_mapping", p.Name), a, false)
				}
			}
		}
	}
	sort.SliceStable(uses, func(i, j int) bool { return uses[i].where < uses[j].where })
	return uses
}

// checkSchema checks that the directory's schema defines every attribute type and object
// class the configuration names: one FAIL line per missing name, naming the key.
func checkSchema(ctx context.Context, r *run) []Result {
	const name = "ldap.schema"
	sc, err := r.readSchema(ctx)
	if err != nil {
		return []Result{fail(name, "let the service account read the subschema entry (access to dn.base=\"cn=Subschema\" by * read)", "reading the schema: %v", err)}
	}
	var out []Result
	seen := map[string]bool{}
	uses := r.schemaUses()
	for _, u := range uses {
		key := u.where + "\x00" + u.name
		if seen[key] {
			continue
		}
		seen[key] = true
		switch {
		case u.class && !sc.HasObjectClass(u.name):
			out = append(out, fail(name, fmt.Sprintf("correct %s, or load a schema that defines %q", u.where, u.name),
				"%s names the object class %q, which the directory's schema does not define", u.where, u.name))
		case !u.class && !sc.HasAttribute(u.name):
			out = append(out, fail(name, fmt.Sprintf("map %s to an attribute the schema has, or load a schema that defines %q", u.where, u.name),
				"%s names the attribute %q, which the directory's schema does not define", u.where, u.name))
		}
	}
	if len(out) == 0 {
		out = append(out, pass(name, "the schema defines all %d attribute types and object classes the configuration names", len(seen)))
	}
	return out
}
