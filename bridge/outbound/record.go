package outbound

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"time"

	"github.com/scimbridge/scimbridge/bridge/state"
	"github.com/scimbridge/scimbridge/mapping"
)

// State layout of one provisioner, besides its outbox and dead letters (bridge/state):
//
//	idmaps/provisioner/<name>/<id>     what was pushed for directory entry <id> (state.IDEntry):
//	                                   DN, Kind, Hash (the entry digest delivered from), and in
//	                                   Extra: target_id, state (active|disabled), mapping (digest
//	                                   of the mapping it was rendered with), and one "a:<path>"
//	                                   key per pushed attribute with its value (mapping.Flatten)
//	outbound/<name>/meta/<key>         breaker, last_error, last_success, last_reconcile (JSON)
//	outbound/<name>/deletes/<id>       the deletion breaker's sliding window: when each
//	                                   deprovision was decided, and whether an admin allowed it
//	outbound/<name>/members/<gid>/<id> pushed membership of target group <gid>: member's
//	                                   directory id → its target id
const (
	extraTargetID = "target_id"
	extraState    = "state"
	extraMapping  = "mapping"
	attrPrefix    = "a:"
	stateActive   = "active"
	stateDisabled = "disabled"
)

func idmapName(prov string) string { return "provisioner/" + prov }

// record is what the provisioner last pushed for one directory entry.
type record struct {
	DN       string
	Kind     string // "user" or "group"
	Hash     string
	TargetID string
	Active   bool
	Mapping  string
	Attrs    map[string]string
}

func recordFrom(e state.IDEntry) record {
	r := record{DN: e.DN, Kind: e.Kind, Hash: e.Hash, Attrs: map[string]string{}}
	for k, v := range e.Extra {
		switch {
		case k == extraTargetID:
			r.TargetID = v
		case k == extraState:
			r.Active = v == stateActive
		case k == extraMapping:
			r.Mapping = v
		case strings.HasPrefix(k, attrPrefix):
			r.Attrs[k[len(attrPrefix):]] = v
		}
	}
	return r
}

func (r record) entry() state.IDEntry {
	extra := make(map[string]string, len(r.Attrs)+3)
	if r.TargetID != "" {
		extra[extraTargetID] = r.TargetID
	}
	if r.Active {
		extra[extraState] = stateActive
	} else {
		extra[extraState] = stateDisabled
	}
	if r.Mapping != "" {
		extra[extraMapping] = r.Mapping
	}
	for k, v := range r.Attrs {
		extra[attrPrefix+k] = v
	}
	return state.IDEntry{DN: r.DN, Kind: r.Kind, Hash: r.Hash, Extra: extra}
}

// work is the payload of an outbox item: which entry to bring up to date on the target, and
// what the engine knew about it when the work was queued. It is stored in the binary form of
// workcodec.go; the JSON tags read items queued before that form, and dead letters.
type work struct {
	Kind mapping.Kind `json:"kind"`
	DN   string       `json:"dn,omitempty"`
	// Entry is the user's attributes as captured (only those the mapping reads); nil with
	// Refresh or Gone.
	Entry map[string][]string `json:"entry,omitempty"`
	// Gone says the entry was deleted from the directory (or left the users base).
	Gone bool `json:"gone,omitempty"`
	// Refresh asks the worker to read the entry again before delivering (scope changes that
	// did not carry the entry, replays of dead letters).
	Refresh bool `json:"refresh,omitempty"`
	// InFilter is the provisioner's filter evaluated against the captured entry (nil when the
	// provisioner has no filter).
	InFilter *bool  `json:"in_filter,omitempty"`
	Hash     string `json:"hash,omitempty"`
	// Mapping is the digest of the mapping whose attributes Entry holds; a different one at
	// delivery (a reload) means the entry is read again.
	Mapping string `json:"mapping,omitempty"`
	// Changed is when the oldest change this item carries happened (delivery latency).
	Changed time.Time `json:"changed"`
	Reason  string    `json:"reason,omitempty"`
}

func decodeWork(it state.Item) (work, error) { return decodeWorkBytes(it.Payload) }

// digest is a short stable digest of a string map (mappings, configurations).
func digest(parts ...map[string]string) string {
	h := sha256.New()
	for _, m := range parts {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			h.Write([]byte(k))
			h.Write([]byte{0})
			h.Write([]byte(m[k]))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
