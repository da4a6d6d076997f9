package outbound

import (
	"fmt"
	"slices"
	"strings"
)

// A provisioner's scope is "members of these groups" (and/or a filter). A configured group
// the directory does not show — renamed, deleted, or unreadable by the bridge's account —
// looks exactly like a group that lost every member: left alone, each of them would be
// deprovisioned (under max_deletes, silently). So while a configured scope group is missing,
// the provisioner deprovisions nobody: no disable, delete or membership removal is queued
// by the live stream or a reconcile, and a deprovision queued before is not sent. Creates
// and updates of users still in scope (through the other groups) continue. The log (an
// error), status and scimbridge_outbound_scope_groups_missing say why, until the group is
// back or the configuration changes. What was held is not lost: when the group is back,
// the batch that shows it refreshes every active account against the scope again, and a
// reconcile (which a changed configuration starts) refreshes every active account that is
// out of scope.

// ScopeStatus says why a provisioner holds its deprovisioning.
type ScopeStatus struct {
	// MissingGroups are the configured scope groups the directory does not show.
	MissingGroups []string `json:"missing_groups"`
	Error         string   `json:"error"`
}

// scopeGroups resolves the configured groups to ids (nil when the provisioner has none) and
// names the ones the index does not know.
func (p *Provisioner) scopeGroups() (ids map[string]bool, missing []string) {
	if len(p.spec.Groups) == 0 {
		return nil, nil
	}
	found, missing := p.e.idx.groupIDs(p.spec.Groups)
	ids = make(map[string]bool, len(found))
	for _, id := range found {
		ids[id] = true
	}
	return ids, missing
}

// held reports whether deprovisioning is held now (a configured scope group is missing),
// as the index shows it.
func (p *Provisioner) held() bool {
	_, missing := p.scopeGroups()
	return len(missing) > 0
}

// noteScope records which configured scope groups are missing now, and says so (log,
// metric) when that changed. It reports whether the hold was just released. The Sink calls
// it for every batch, after the batch updated the index: that is where the index changes.
func (p *Provisioner) noteScope(missing []string) (released bool) {
	p.mu.Lock()
	was := p.missing
	changed := !slices.Equal(was, missing)
	p.missing = missing
	p.mu.Unlock()
	if !changed {
		return false
	}
	p.e.m.scopeMissing.WithLabelValues(p.spec.Name).Set(float64(len(missing)))
	if len(missing) > 0 {
		p.log.Error().Strs("missing_groups", missing).
			Msg("scope group not found in the directory (renamed, deleted or unreadable): deprovisioning is held until it is back or the configuration changes")
		return false
	}
	if len(was) > 0 {
		p.log.Warn().Strs("groups", was).Msg("scope groups found again: deprovisioning resumes")
		return true
	}
	return false
}

// scopeStatus is the status section of a held provisioner (nil when nothing is held).
func (p *Provisioner) scopeStatus() *ScopeStatus {
	p.mu.Lock()
	missing := slices.Clone(p.missing)
	p.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	return &ScopeStatus{MissingGroups: missing, Error: heldMessage(missing)}
}

func heldMessage(missing []string) string {
	return fmt.Sprintf("scope group %s not found in the directory (renamed, deleted or unreadable): deprovisioning is held until it is back or the configuration changes", strings.Join(missing, ", "))
}

// inGroups reports whether the entry at dn passes the provisioner's group condition.
func (p *Provisioner) inGroups(dn string) bool {
	if len(p.spec.Groups) == 0 {
		return true
	}
	ids, _ := p.scopeGroups()
	return p.e.idx.memberOfAny(dn, ids, p.spec.NestedGroups)
}

// pushedGroups is the set of groups pushed to the target: the configured groups (and, with
// nested_groups, the groups inside them), or every group when none is configured.
func (p *Provisioner) pushedGroups() map[string]bool {
	if !p.spec.PushGroups {
		return nil
	}
	if len(p.spec.Groups) == 0 {
		return p.e.idx.allGroups()
	}
	ids, _ := p.e.idx.groupIDs(p.spec.Groups)
	return p.e.idx.closure(ids, p.spec.NestedGroups)
}
